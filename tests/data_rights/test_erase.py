"""Erasure: personal data gone from every table and from Redis; vouchers, redemptions
and the ledger kept under an anonymous id; the same WeChat account is a new customer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tortoise import Tortoise

from models.audit import AuditEntry
from models.customers import Customer
from models.journey import PointsBalance, PointsEntry, RewardGrant
from models.redemptions import Redemption
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from server.workers import daily_facts_pass
from services import privacy
from services.privacy import ErasedCustomers, redis_data
from tests.data_rights.fixtures import (
    EXPORT,
    ME,
    PHONE,
    Person,
    admin_erase,
    history,
    person,
    redis_keys_naming,
    superadmin,
)
from tests.helpers import customer_login, error_of
from tests.journey.fixtures import Shopper, pos, purchase


async def _all_rows() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for model in Tortoise.apps["models"].values():
        out[model._meta.db_table] = await model.all().values()
    return out


def _personal(me: Person) -> list[str]:
    """What would name the person in any column of any table."""
    return [me.openid, me.unionid, PHONE, "Erin", "Hangzhou", "coffee", "running"]


@pytest.mark.both_redis
async def test_closing_my_account_erases_me_everywhere_and_keeps_finance_anonymously(client: TestClient) -> None:
    me = await person(client)
    await history(client, me)
    redis = client.server.app[REDIS]
    assert await redis_keys_naming(client, str(me.id)), "the history left no Redis key naming the customer"
    ledger_before = await PointsEntry.filter(customer_id=me.id).values("id", "delta", "balance_after", "ref")

    resp = await client.delete(ME, headers=me.headers)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["customer_id"] == me.id and report["vouchers_voided"] == [me.available]

    # The token held stops working at once, on every customer route; the refresh token too.
    for method, path in (("GET", ME), ("GET", EXPORT), ("POST", me.coupons[1].grab_path)):
        again = await client.request(method, path, headers=me.headers)
        assert again.status == 401, (path, await again.text())
        assert (await error_of(again))["code"] == "invalid_token"
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": me.refresh_token})
    assert refresh.status == 401

    # The customers row: a tombstone openid, personal columns empty.
    row = await Customer.get(id=me.id)
    assert row.openid.startswith("erased:") and len(row.openid) > len("erased:") + 16
    assert row.erased_at is not None
    assert (row.unionid, row.session_key, row.nickname, row.city, row.phone_number, row.phone_country_code) == (
        None, None, None, None, None, None,
    )  # fmt: skip
    assert row.interest_tags == [] and row.preferred_store_id is None and row.phone_bound_at is None

    # No column of any table holds anything personal any more.
    for table, table_rows in (await _all_rows()).items():
        dump = json.dumps(table_rows, default=str, ensure_ascii=False)
        for needle in _personal(me):
            assert needle not in dump, (table, needle)

    # Deleted tables hold nothing of the customer; kept ones keep their rows.
    for holding in privacy.HOLDINGS:
        left = await holding.model.filter(holding.rows_of(me.id)).count()
        if holding.erasure == "delete":
            assert left == 0, holding.table
        else:
            assert left > 0, holding.table
    vouchers = {v.id: v.status for v in await Voucher.filter(customer_id=me.id)}
    assert vouchers == {me.available: "void", me.redeemed: "used"}
    assert await Redemption.filter(customer_id=me.id, voucher_id=me.redeemed).count() == 1
    assert await PointsEntry.filter(customer_id=me.id).values("id", "delta", "balance_after", "ref") == ledger_before
    assert await PointsBalance.filter(customer_id=me.id).exists()
    assert not await RewardGrant.filter(customer_id=me.id, status="pending").exists()

    # Redis: no key names the customer; audience sets no longer list them.
    assert await redis_keys_naming(client, str(me.id), me.openid, me.unionid) == []
    campaign_id = me.coupons[0].campaign.id
    assert not await redis.sismember(f"{{feed-audience}}:{campaign_id}", str(me.id))
    assert not await redis.sismember(f"{{cmp:{campaign_id}}}:audience", str(me.id))
    assert await redis.sismember(f"{{feed-audience}}:{campaign_id}", "1")  # the others stay

    # Audited; the earlier audit entry about them is kept with its personal values redacted.
    erase = await AuditEntry.get(action="customer.erase", entity_id=me.id)
    assert erase.actor_kind == "customer" and erase.after and erase.after["reason"] == "closed by the customer"
    update = await AuditEntry.get(action="customer.update", entity_id=me.id)
    assert update.before and update.before["nickname"] == "[erased]" and update.before["membership_tier"] == "standard"

    # The same WeChat account logging in again is a new customer, with nothing of the old one.
    login = await customer_login(client, me.openid, me.unionid)
    assert login["user"]["id"] != me.id and login["user"]["nickname"] is None
    assert (await Customer.get(openid=me.openid)).id == login["user"]["id"]


async def test_a_superadmin_erases_with_a_reason_once(client: TestClient) -> None:
    me = await person(client)
    headers = await superadmin(client)
    missing = await client.post(admin_erase(me.id), json={}, headers=headers)
    assert missing.status == 422 and (await error_of(missing))["code"] == "validation_failed"
    resp = await client.post(admin_erase(me.id), json={"reason": "ticket 42: erasure request"}, headers=headers)
    assert resp.status == 200, await resp.text()
    entry = await AuditEntry.get(action="customer.erase", entity_id=me.id)
    assert entry.actor_kind == "admin" and entry.after and entry.after["reason"] == "ticket 42: erasure request"
    again = await client.post(admin_erase(me.id), json={"reason": "twice"}, headers=headers)
    assert again.status == 409 and (await error_of(again))["code"] == "customer_erased"
    unknown = await client.post(admin_erase(987_654), json={"reason": "x"}, headers=headers)
    assert unknown.status == 404 and (await error_of(unknown))["code"] == "not_found"
    # The customer's token stopped working.
    assert (await client.get(ME, headers=me.headers)).status == 401


async def test_an_erased_customer_stays_erased(client: TestClient) -> None:
    """No job brings profiling back, no audience takes the id in, and a POS event naming
    the old id is refused."""
    me = await person(client)
    shop = await pos(client)
    resp = await client.delete(ME, headers=me.headers)
    assert resp.status == 200
    await client.server.app[REDIS].delete(f"lock:facts-recompute:{__import__('datetime').date.today().isoformat()}")
    assert await daily_facts_pass(client.server.app[REDIS])
    from models.audience import CustomerFacts

    assert not await CustomerFacts.filter(customer_id=me.id).exists()
    assert await CustomerFacts.filter(customer_id=me.id - 1).exists()  # others got theirs
    # In no audience, though its tier is "standard" like everybody's.
    from services.audience import rules as audience

    everybody = await audience.customer_ids_matching({"tier": "standard"})
    assert me.id not in everybody and me.id - 1 in everybody
    event = await shop.post(purchase("late-1", Shopper(me.id, me.openid, me.headers), 100))
    assert event.status == 422 and (await error_of(event))["code"] == "unknown_customer"


async def test_other_processes_refuse_the_erased_token_within_their_refresh(client: TestClient) -> None:
    """Another process's gate (its own copy) learns the erasure from Redis on refresh."""
    me = await person(client)
    other = ErasedCustomers(client.server.app[SETTINGS].access_token_ttl, refresh_seconds=0.0)
    await other.refresh(client.server.app[REDIS])
    assert not other.blocks(me.id)
    assert (await client.delete(ME, headers=me.headers)).status == 200
    assert other.stale()
    await other.refresh(client.server.app[REDIS])
    assert other.blocks(me.id)


async def test_concurrent_erasures_of_one_customer_erase_once(client: TestClient) -> None:
    me = await person(client)
    headers = await superadmin(client)
    resps = await asyncio.gather(
        *(client.post(admin_erase(me.id), json={"reason": f"race {i}"}, headers=headers) for i in range(8)),
        client.delete(ME, headers=me.headers),
    )
    statuses = sorted(r.status for r in resps)
    assert statuses.count(200) == 1, [(r.status, await r.text()) for r in resps]
    assert set(statuses) <= {200, 401, 409}, statuses
    assert await AuditEntry.filter(action="customer.erase", entity_id=me.id).count() == 1


async def test_a_redis_failure_after_the_commit_is_repaired_by_repeating(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = await person(client)
    headers = await superadmin(client)
    assert await redis_keys_naming(client, str(me.id))  # the viewer version of the profile edit
    real = redis_data.erase

    async def redis_fails(redis: Any, customer_id: int) -> int:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(redis_data, "erase", redis_fails)
    first = await client.post(admin_erase(me.id), json={"reason": "ticket 7"}, headers=headers)
    assert first.status >= 500
    assert (await Customer.get(id=me.id)).erased_at is not None  # the database part committed
    assert await redis_keys_naming(client, str(me.id))
    monkeypatch.setattr(redis_data, "erase", real)
    again = await client.post(admin_erase(me.id), json={"reason": "ticket 7, again"}, headers=headers)
    assert again.status == 409 and (await error_of(again))["code"] == "customer_erased"
    assert await redis_keys_naming(client, str(me.id), me.openid) == []


async def test_the_token_gate_keeps_its_copy_when_redis_fails() -> None:
    """A customer request is not failed by the gate: Redis down keeps the ids it had."""
    from redis.asyncio import Redis

    gate = ErasedCustomers(900, refresh_seconds=0.0)
    gate.add(41)
    down = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        await gate.refresh(down)
    finally:
        await down.aclose()
    assert gate.blocks(41) and not gate.blocks(42)
