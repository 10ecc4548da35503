"""Exchanging points for a coupon over real HTTP, real Redis and the real databases: the
debit and the voucher together, concurrency against the balance and the stock, refunds
on refusal (by the request and by the worker), idempotent retries, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

from models.campaigns import CouponTemplate
from models.journey import PointsEntry, RewardGrant
from server.keys import JOURNEY
from services.journey import exchange_ref, points
from tests.campaigns.fixtures import campaign_body, coupon_body
from tests.helpers import bearer, error_of, logged_in_admin
from tests.journey.fixtures import drain_claims, make_campaign, shoppers

EXCHANGE = "/api/v1/me/points/exchange"


async def _coupon(price: int | None = 100, **coupon: Any) -> CouponTemplate:
    fields = coupon.pop("campaign", {})
    campaign = await make_campaign(coupons=1, coupon={"points_price": price, "per_user_limit": 100, **coupon}, **fields)
    return await CouponTemplate.get(campaign_id=campaign.id)


async def _exchange(client, shopper, coupon_id: Any, key: str | None = None) -> Any:
    headers = dict(shopper.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(EXCHANGE, json={"coupon_id": coupon_id}, headers=headers)


async def _ledger_sane(customer_id: int) -> list[PointsEntry]:
    entries = await PointsEntry.filter(customer_id=customer_id).order_by("id")
    assert min(e.balance_after for e in entries) >= 0
    assert sum(e.delta for e in entries) == await points.balance_of(customer_id)
    return entries


async def test_exchange_debits_points_and_puts_the_voucher_in_the_wallet(client):
    coupon = await _coupon(price=120)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 300, "test", "seed")
    resp = await _exchange(client, me, coupon.id)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["status"] == "issued" and body["points_spent"] == 120 and body["balance"] == 180
    voucher = body["voucher"]
    assert voucher["coupon_id"] == coupon.id and voucher["status"] == "available" and len(voucher["code"]) == 16
    # In the wallet at once (pending), and for good once the worker wrote it.
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert [(v["id"], v["pending"]) for v in wallet["items"]] == [(voucher["id"], True)]
    await drain_claims(client)
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert [(v["id"], v["code"], v["pending"]) for v in wallet["items"]] == [(voucher["id"], voucher["code"], False)]
    ledger = await (await client.get("/api/v1/me/points", headers=me.headers)).json()
    assert ledger["balance"] == 180
    assert [(e["delta"], e["reason"]) for e in ledger["items"]] == [(-120, "exchange"), (300, "test")]
    grant = await RewardGrant.get(id=body["exchange_id"])
    assert grant.participation_id is None and grant.trigger == "exchange" and grant.status == "issued"  # type: ignore[attr-defined]
    # The customer's campaign page shows the price.
    page = await (await client.get(f"/api/v1/campaigns/{coupon.campaign_id}", headers=me.headers)).json()  # type: ignore[attr-defined]
    assert page["rewards"]["coupons"][0]["points_price"] == 120


async def test_twenty_concurrent_exchanges_with_points_for_three(client):
    coupon = await _coupon(price=100, total_stock=50)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 300, "test", "seed")
    resps = await asyncio.gather(*(_exchange(client, me, coupon.id) for _ in range(20)))
    statuses = sorted(r.status for r in resps)
    assert statuses == [201] * 3 + [409] * 17
    refused = [await error_of(r) for r in resps if r.status == 409]
    assert {e["code"] for e in refused} == {"insufficient_points"}
    assert all(e["details"]["price"] == 100 and e["details"]["balance"] >= 0 for e in refused)
    assert await points.balance_of(me.id) == 0
    await _ledger_sane(me.id)
    assert await RewardGrant.filter(customer_id=me.id).count() == 3  # refused debits left no grant behind
    await drain_claims(client)
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert len(wallet["items"]) == 3


async def test_sold_out_and_limit_refusals_give_the_points_back(client):
    coupon = await _coupon(price=50, total_stock=3)
    [me, other] = await shoppers(client, 2)
    await points.add(me.id, 1_000, "test", "seed")
    resps = await asyncio.gather(*(_exchange(client, me, coupon.id) for _ in range(8)))
    assert sorted(r.status for r in resps) == [201] * 3 + [409] * 5
    for r in resps:
        if r.status == 409:
            error = await error_of(r)
            assert error["code"] == "coupon_sold_out" and error["details"]["refunded_points"] == 50
    assert await points.balance_of(me.id) == 1_000 - 3 * 50
    entries = await _ledger_sane(me.id)
    assert [e.reason for e in entries].count("exchange_refund") == 5
    assert await RewardGrant.filter(status="refused", refusal="sold_out").count() == 5

    limited = await _coupon(price=10, per_user_limit=1)
    await points.add(other.id, 100, "test", "seed-other")
    assert (await _exchange(client, other, limited.id)).status == 201
    resp = await _exchange(client, other, limited.id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "coupon_limit_reached"
    assert await points.balance_of(other.id) == 90

    budget = await _coupon(price=10, campaign={"budget_limit": 500}, face_value=500)
    assert (await _exchange(client, other, budget.id)).status == 201
    resp = await _exchange(client, other, budget.id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "budget_exhausted"
    assert await points.balance_of(other.id) == 80


async def test_a_retry_with_the_same_key_replays_and_changes_nothing(client):
    coupon = await _coupon(price=100)
    another = await _coupon(price=100)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 1_000, "test", "seed")
    first = await _exchange(client, me, coupon.id, key="exch-1")
    assert first.status == 201
    body = await first.json()
    # Five retries at once, then one later: the same voucher, one debit.
    retries = await asyncio.gather(*(_exchange(client, me, coupon.id, key="exch-1") for _ in range(5)))
    for r in [*retries, await _exchange(client, me, coupon.id, key="exch-1")]:
        assert r.status == 201 and r.headers["Idempotent-Replayed"] == "true"
        again = await r.json()
        assert again["voucher"]["id"] == body["voucher"]["id"] and again["exchange_id"] == body["exchange_id"]
    assert await points.balance_of(me.id) == 900
    assert await RewardGrant.filter(customer_id=me.id).count() == 1
    # Several first requests with one key at once: one exchange.
    racing = await asyncio.gather(*(_exchange(client, me, coupon.id, key="exch-2") for _ in range(6)))
    assert [r.status for r in racing] == [201] * 6
    assert len({(await r.json())["voucher"]["id"] for r in racing}) == 1
    assert await points.balance_of(me.id) == 800
    # The same key for another coupon is a conflict, not an exchange.
    resp = await _exchange(client, me, another.id, key="exch-1")
    assert resp.status == 409 and (await error_of(resp))["code"] == "conflict"
    # A refusal replays too, without another refund.
    await CouponTemplate.filter(id=another.id).update(total_stock=0)
    refused = await _exchange(client, me, another.id, key="exch-3")
    assert refused.status == 409 and (await error_of(refused))["code"] == "coupon_sold_out"
    replay = await _exchange(client, me, another.id, key="exch-3")
    assert replay.status == 409 and (await error_of(replay))["code"] == "coupon_sold_out"
    assert await points.balance_of(me.id) == 800
    assert await PointsEntry.filter(customer_id=me.id, reason="exchange_refund").count() == 1
    await _ledger_sane(me.id)


async def test_refusals_before_any_write(client):
    plain = await _coupon(price=None)
    paused = await _coupon(campaign={"status": "paused"})
    targeted = await _coupon(campaign={"visibility": "targeted", "audience_rule": {"tier": "platinum"}})
    coupon = await _coupon(price=500)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 100, "test", "seed")

    async def refused(coupon_id: Any, status: int, code: str, **kw: Any) -> dict[str, Any]:
        resp = await _exchange(client, me, coupon_id, **kw)
        assert resp.status == status, await resp.text()
        error = await error_of(resp)
        assert error["code"] == code, error
        return error

    await refused(plain.id, 409, "coupon_not_exchangeable")
    await refused(paused.id, 409, "campaign_not_active")
    assert (await refused(targeted.id, 403, "not_eligible"))["details"]["reason"] == "audience"
    error = await refused(coupon.id, 409, "insufficient_points")
    assert error["details"] == {"balance": 100, "price": 500}
    await refused(10**12, 404, "not_found")
    await refused(coupon.id, 422, "validation_failed", key="not a key!")
    for bad in ({}, {"coupon_id": "1"}, {"coupon_id": 0}, {"coupon_id": 1, "extra": 1}, {"coupon_id": 2**64}):
        resp = await client.post(EXCHANGE, json=bad, headers=me.headers)
        assert resp.status == 422, (bad, await resp.text())
        assert (await error_of(resp))["code"] == "validation_failed"
    resp = await client.post(EXCHANGE, data=b"{", headers={**me.headers, "Content-Type": "application/json"})
    assert resp.status == 400
    resp = await client.post(EXCHANGE, json={"coupon_id": coupon.id})
    assert resp.status == 401
    # Nothing was written by any of them.
    assert await RewardGrant.all().count() == 0
    assert [e.ref for e in await PointsEntry.filter(customer_id=me.id)] == ["seed"]


async def _paid_pending_exchange_of_a_sold_out_coupon(client, key: str) -> tuple[CouponTemplate, Any, str]:
    """A coupon whose last unit another customer took, and ``me`` (100 points) with an
    exchange of it a crash left between the commit and Redis: paid for (40), still
    pending. Returns (coupon, me, the grant's ref)."""
    coupon = await _coupon(price=40, total_stock=1)
    [me, other] = await shoppers(client, 2)
    await points.add(other.id, 40, "test", "seed-other")
    assert (await _exchange(client, other, coupon.id)).status == 201  # the last one
    await points.add(me.id, 100, "test", "seed")
    ref = exchange_ref(me.id, key)
    await RewardGrant.create(
        ref=ref, customer_id=me.id, campaign_id=coupon.campaign_id, template_id=coupon.id,  # type: ignore[attr-defined]
        trigger="exchange",
    )  # fmt: skip
    await points.add(me.id, -40, "exchange", ref)
    return coupon, me, ref


async def test_a_grant_left_pending_is_finished_by_the_worker_with_one_refund(client):
    coupon, me, ref = await _paid_pending_exchange_of_a_sold_out_coupon(client, "crashed")
    issuer = client.server.app[JOURNEY].rewards
    await asyncio.gather(*(issuer.issue_pending() for _ in range(5)))
    grant = await RewardGrant.get(ref=ref)
    assert grant.status == "refused" and grant.refusal == "sold_out"
    assert await points.balance_of(me.id) == 100
    assert await PointsEntry.filter(customer_id=me.id, reason="exchange_refund").count() == 1
    # The client's retry of that exchange answers its outcome.
    resp = await _exchange(client, me, coupon.id, key="crashed")
    assert resp.status == 409 and (await error_of(resp))["code"] == "coupon_sold_out"
    assert await points.balance_of(me.id) == 100


async def test_a_refused_grant_stays_refused_when_stock_comes_back(client):
    """Two issuers read the same pending grant; the first is refused (sold out) and gives
    the points back; stock is added; the second must not issue it anyway (the customer
    would have the voucher and the points)."""
    coupon, me, ref = await _paid_pending_exchange_of_a_sold_out_coupon(client, "late")
    journey = client.server.app[JOURNEY]
    stale = await RewardGrant.get(ref=ref)  # what the slower issuer read, still pending
    assert await journey.rewards.issue_pending() == 0
    assert (await RewardGrant.get(ref=ref)).status == "refused"
    await journey.stock.add_stock(coupon.id, 5)
    assert await journey.rewards._issue(stale) == 0
    grant = await RewardGrant.get(ref=ref)
    assert grant.status == "refused" and grant.refusal == "sold_out" and grant.claim_id is None
    assert await points.balance_of(me.id) == 100
    assert await PointsEntry.filter(customer_id=me.id, reason="exchange_refund").count() == 1
    await drain_claims(client)
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert wallet["items"] == []
    # The stock added is still there for everyone else.
    [later] = await shoppers(client, 1, prefix="o_later")
    await points.add(later.id, 40, "test", "seed-later")
    assert (await _exchange(client, later, coupon.id)).status == 201


async def test_admins_set_the_points_price_in_the_builder(client):
    headers = bearer((await logged_in_admin(client, "operator"))["access_token"])
    body = campaign_body(coupons=[coupon_body(points_price=300), coupon_body()])
    resp = await client.post("/api/v1/admin/campaigns", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert [c["points_price"] for c in created["coupons"]] == [300, None]
    bad = campaign_body(coupons=[coupon_body(points_price=0)])
    resp = await client.post("/api/v1/admin/campaigns", json=bad, headers=headers)
    assert resp.status == 422
    assert "coupons.0.points_price" in [e["field"] for e in (await error_of(resp))["details"]["errors"]]
