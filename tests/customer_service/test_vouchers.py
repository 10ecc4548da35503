"""Voiding a voucher (its stock, limit place and budget given back exactly once, also
under 200 concurrent voids) and granting one by hand (through the grab's gate, marked as
a manual grant)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.audit import AuditEntry
from models.campaigns import Campaign
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.stock import CampaignKeys, ClaimsWorker
from tests.customer_service.fixtures import admin_headers, customer, customer_path, ok, void_path
from tests.helpers import cheap_password_hashing, error_of
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import grab


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _drain(client: Any) -> None:
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()


async def _redis_state(client: Any, live: Any) -> tuple[int, dict[str, int], int | None]:
    """(stock left, holders, budget left) of a live coupon in Redis."""
    redis = client.server.app[REDIS]
    keys = CampaignKeys(live.campaign.id)
    stock = int(await redis.hget(keys.coupon(live.template.id), "stock"))
    holders = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.holders(live.template.id))).items()}
    budget = await redis.get(keys.budget)
    return stock, holders, None if budget is None else int(budget)


async def test_a_void_gives_the_stock_back_and_someone_else_grabs_it(client) -> None:
    live = await live_coupon(client, stock=1, face_value=800, budget_limit=800)
    first, second = await customers(client, 2, "o_void")
    [held] = await grab(client, live, [first])
    voucher = await held.row()
    # Sold out, budget spent: the second customer cannot grab.
    refused = await client.post(live.grab_path, headers=second)
    assert refused.status == 409 and (await error_of(refused))["code"] == "coupon_sold_out"
    assert await _redis_state(client, live) == (0, {str(voucher.customer_id): 1}, 0)
    assert (await Campaign.get(id=live.campaign.id)).budget_spent == 800

    headers = await admin_headers(client)
    body = await ok(await client.post(void_path(voucher.id), json={"reason": "issued by mistake"}, headers=headers))
    assert body["stock"] == "returned"
    assert (body["voucher"]["status"], body["voucher"]["void_reason"], body["voucher"]["stock_returned"]) == (
        "void", "issued by mistake", True,
    )  # fmt: skip
    row = await Voucher.get(id=voucher.id)
    assert row.status == "void" and row.voided_by is not None and row.voided_at is not None
    assert await _redis_state(client, live) == (1, {}, 800)
    assert (await Campaign.get(id=live.campaign.id)).budget_spent == 0
    [entry] = await AuditEntry.filter(action="voucher.void", entity_id=voucher.id)
    assert entry.before == {"status": "available", "void_reason": None, "stock_returned": False}
    assert entry.after == {"status": "void", "void_reason": "issued by mistake", "stock_returned": True}

    # The unit is grabbable again: by someone else.
    [again] = await grab(client, live, [second])
    assert (await again.row()).status == "available"
    assert (await _redis_state(client, live))[0] == 0
    # The customer's wallet shows the voucher void, not available.
    wallet = await client.get("/api/v1/me/vouchers", headers=first)
    assert held.claim_id not in [v["id"] for v in (await wallet.json())["items"] if v["status"] == "available"]


async def test_a_reload_counts_a_voided_voucher_as_not_issued(client) -> None:
    live = await live_coupon(client, stock=3)
    [held] = await grab(client, live, await customers(client, 1, "o_reload"))
    voucher = await held.row()
    headers = await admin_headers(client)
    await ok(await client.post(void_path(voucher.id), json={"reason": "wrong customer"}, headers=headers))
    redis = client.server.app[REDIS]
    keys = CampaignKeys(live.campaign.id)
    # Redis lost: the coupon is loaded from the database again.
    await redis.delete(keys.coupon(live.template.id), keys.holders(live.template.id), keys.budget)
    await client.server.app[STOCK].load_campaign(live.campaign.id)
    assert (await _redis_state(client, live))[:2] == (3, {})


async def test_two_hundred_concurrent_voids_give_back_exactly_once(client) -> None:
    live = await live_coupon(client, stock=5, face_value=500, budget_limit=5000)
    [held] = await grab(client, live, await customers(client, 1, "o_race"))
    voucher = await held.row()
    before = await _redis_state(client, live)
    headers = await admin_headers(client)
    resps = await asyncio.gather(
        *(client.post(void_path(voucher.id), json={"reason": "race"}, headers=headers) for _ in range(200))
    )
    statuses = [r.status for r in resps]
    assert statuses.count(200) == 1 and statuses.count(409) == 199, sorted(set(statuses))
    codes = {(await error_of(r))["code"] for r in resps if r.status == 409}
    assert codes == {"voucher_already_void"}
    assert await _redis_state(client, live) == (before[0] + 1, {}, (before[2] or 0) + 500)
    assert (await Campaign.get(id=live.campaign.id)).budget_spent == 0
    assert await AuditEntry.filter(action="voucher.void").count() == 1
    # A give-back retried after the void (a crash and a retry) gives nothing twice.
    assert await client.server.app[STOCK].give_back(await Voucher.get(id=voucher.id)) == "dup"
    assert (await _redis_state(client, live))[0] == before[0] + 1


async def test_only_an_issued_unused_voucher_can_be_voided(client) -> None:
    live = await live_coupon(client, stock=5)
    used, expired, voided = await grab(client, live, await customers(client, 3, "o_refuse"))
    headers = await admin_headers(client)
    await Voucher.filter(claim_id=used.claim_id).update(status="used", used_at=datetime.now(UTC))
    await Voucher.filter(claim_id=expired.claim_id).update(valid_until=datetime.now(UTC) - timedelta(minutes=1))
    v = await voided.row()
    await ok(await client.post(void_path(v.id), json={"reason": "first"}, headers=headers))

    cases = [
        ((await used.row()).id, 409, "voucher_already_used"),
        ((await expired.row()).id, 409, "voucher_expired"),
        (v.id, 409, "voucher_already_void"),
        (987_654_321, 404, "voucher_not_found"),
    ]
    for voucher_id, status, code in cases:
        resp = await client.post(void_path(voucher_id), json={"reason": "again"}, headers=headers)
        assert resp.status == status, await resp.text()
        assert (await error_of(resp))["code"] == code
    for body in ({}, {"reason": ""}, {"reason": 5}):
        resp = await client.post(void_path(v.id), json=body, headers=headers)
        assert resp.status == 422, await resp.text()
    assert await AuditEntry.filter(action="voucher.void").count() == 1


async def test_a_manual_grant_goes_through_the_gate_and_is_marked(client) -> None:
    live = await live_coupon(client, stock=2, per_user_limit=1, face_value=300)
    someone = await customer("o_grant")
    headers = await admin_headers(client)
    path = customer_path(someone.id, "/vouchers")
    body = await ok(await client.post(path, json={"coupon_id": live.template.id, "reason": "complaint"},
                                      headers=headers), 201)  # fmt: skip
    assert body["manual_grant"] is True and body["replayed"] is False and body["coupon_id"] == live.template.id
    await _drain(client)
    voucher = await Voucher.get(claim_id=body["claim_id"])
    assert voucher.customer_id == someone.id and voucher.granted_by is not None
    detail = await ok(await client.get(customer_path(someone.id), headers=headers))
    [shown] = detail["wallet"]["vouchers"]
    assert shown["manual_grant"] is True and shown["granted_by"] == voucher.granted_by
    [entry] = await AuditEntry.filter(action="voucher.grant", entity_id=someone.id)
    assert entry.after["claim_id"] == body["claim_id"] and entry.after["reason"] == "complaint"
    stock, holders, _ = await _redis_state(client, live)
    assert stock == 1 and holders == {str(someone.id): 1}

    # The per-customer limit holds, as for a grab.
    again = await client.post(path, json={"coupon_id": live.template.id, "reason": "twice"}, headers=headers)
    assert again.status == 409 and (await error_of(again))["code"] == "coupon_limit_reached"
    # Void it and grant again: the limit place came back with the stock.
    await ok(await client.post(void_path(voucher.id), json={"reason": "wrong coupon"}, headers=headers))
    await ok(await client.post(path, json={"coupon_id": live.template.id, "reason": "right one"}, headers=headers), 201)
    await _drain(client)
    # Analytics tell manual grants and given-back voids apart.
    figures = await ok(await client.get(f"/api/v1/admin/campaigns/{live.campaign.id}/analytics", headers=headers))
    [coupon] = figures["coupons"]
    assert (coupon["issued"], coupon["manual_grants"], coupon["voided_returned"]) == (2, 2, 1)


async def test_a_manual_grant_refuses_as_a_grab_does(client) -> None:
    headers = await admin_headers(client)
    sold_out = await live_coupon(client, stock=1)
    [_] = await grab(client, sold_out, await customers(client, 1, "o_first"))
    poor = await live_coupon(client, stock=5, face_value=1000, budget_limit=1000)
    [_] = await grab(client, poor, await customers(client, 1, "o_budget"))
    ended = await live_coupon(client, status="ended")
    someone = await customer("o_refused")
    path = customer_path(someone.id, "/vouchers")
    cases = [
        (sold_out.template.id, 409, "coupon_sold_out"),
        (poor.template.id, 409, "budget_exhausted"),
        (ended.template.id, 409, "campaign_not_active"),
        (987_654_321, 422, "unknown_coupon"),
    ]
    for coupon_id, status, code in cases:
        resp = await client.post(path, json={"coupon_id": coupon_id, "reason": "try"}, headers=headers)
        assert resp.status == status, await resp.text()
        assert (await error_of(resp))["code"] == code
    resp = await client.post(customer_path(987_654, "/vouchers"), json={"coupon_id": sold_out.template.id,
                                                                       "reason": "x"}, headers=headers)  # fmt: skip
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    for body in ({"coupon_id": sold_out.template.id}, {"coupon_id": 0, "reason": "x"}, {"reason": "x"}):
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == 422, await resp.text()
    await _drain(client)
    assert not await Voucher.filter(customer_id=someone.id).exists()
    assert not await AuditEntry.filter(action="voucher.grant").exists()


async def test_a_manual_grant_with_an_idempotency_key_is_issued_once(client) -> None:
    live = await live_coupon(client, stock=5, per_user_limit=3)
    someone = await customer("o_grant_retry")
    headers = {**await admin_headers(client), "Idempotency-Key": "ticket-99"}
    path = customer_path(someone.id, "/vouchers")
    resps = await asyncio.gather(
        *(client.post(path, json={"coupon_id": live.template.id, "reason": "retry"}, headers=headers)
          for _ in range(20))
    )  # fmt: skip
    statuses = sorted(r.status for r in resps)
    assert statuses == [200] * 19 + [201], statuses
    claims = {(await r.json())["claim_id"] for r in resps}
    assert len(claims) == 1
    await _drain(client)
    assert await Voucher.filter(customer_id=someone.id).count() == 1
    assert (await _redis_state(client, live))[0] == 4
