"""Coupon grabs under real concurrency, against real Redis and the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import Campaign, CouponTemplate
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.stock import CampaignKeys, ClaimsWorker
from tests.helpers import error_of
from tests.stock.fixtures import customers, grab_all, live_coupon

pytestmark = pytest.mark.both_redis


async def _drain(client) -> None:
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()


async def _statuses(resps) -> list[int]:
    return sorted(r.status for r in resps)


async def test_stock_of_one_with_64_customers_at_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=1)
    auths = await customers(client, 64)
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in auths))
    assert (await _statuses(resps)).count(201) == 1
    for resp in resps:
        if resp.status != 201:
            assert resp.status == 409 and (await error_of(resp))["code"] == "coupon_sold_out"
    await _drain(client)
    assert await Voucher.filter(template_id=coupon.template.id).count() == 1


async def test_stock_of_100_with_1000_customers(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=100)
    auths = await customers(client, 1000)
    statuses = sorted(await grab_all(client, coupon.grab_path, auths))
    assert statuses.count(201) == 100 and statuses.count(409) == 900
    await _drain(client)
    assert await Voucher.filter(template_id=coupon.template.id).count() == 100
    owners = await Voucher.filter(template_id=coupon.template.id).values_list("customer_id", flat=True)
    assert len(set(owners)) == 100
    redis = client.server.app[REDIS]
    assert int(await redis.hget(CampaignKeys(coupon.campaign.id).coupon(coupon.template.id), "stock")) == 0


async def test_one_customer_limit_two_with_50_requests_at_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000, grab_user_max=1000)
    coupon = await live_coupon(client, stock=100, per_user_limit=2)
    [auth] = await customers(client, 1)
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=auth) for _ in range(50)))
    statuses = await _statuses(resps)
    assert statuses.count(201) == 2 and statuses.count(409) == 48
    await _drain(client)
    assert await Voucher.filter(template_id=coupon.template.id).count() == 2


async def test_budget_stops_issuance(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=10, face_value=1000, budget_limit=3500)
    auths = await customers(client, 10)
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in auths))
    statuses = await _statuses(resps)
    assert statuses.count(201) == 3
    codes = {(await error_of(r))["code"] for r in resps if r.status != 201}
    assert codes == {"budget_exhausted"}
    await _drain(client)
    assert (await Campaign.get(id=coupon.campaign.id)).budget_spent == 3000


async def test_grab_before_opening_then_at_opening(client):
    opens = datetime.now(UTC) + timedelta(seconds=1)
    coupon = await live_coupon(client, opens_at=opens)
    [auth] = await customers(client, 1)
    resp = await client.post(coupon.grab_path, headers=auth)
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "grab_not_started"
    assert datetime.fromisoformat(error["details"]["opens_at"]) == opens
    assert datetime.fromisoformat(error["details"]["server_time"]) < opens
    await asyncio.sleep((opens - datetime.now(UTC)).total_seconds() + 0.01)
    resp = await client.post(coupon.grab_path, headers=auth)
    assert resp.status == 201, await resp.text()


async def test_idempotency_key_returns_the_first_answer(client):
    coupon = await live_coupon(client, per_user_limit=5)
    [auth] = await customers(client, 1)
    first = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    again = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    assert first.status == again.status == 201
    assert (await first.json()) == (await again.json())
    other = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-2"})
    assert (await other.json())["voucher"]["id"] != (await first.json())["voucher"]["id"]
    await _drain(client)
    assert await Voucher.filter(template_id=coupon.template.id).count() == 2
    resp = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "bad key!"})
    assert resp.status == 422


async def test_a_hammering_customer_is_rate_limited(client_with):
    client = await client_with(grab_user_max=5, grab_user_window_ms=60_000)
    coupon = await live_coupon(client, stock=100, per_user_limit=100)
    [auth] = await customers(client, 1)
    resps = [await client.post(coupon.grab_path, headers=auth) for _ in range(7)]
    assert [r.status for r in resps] == [201] * 5 + [429] * 2
    assert int(resps[-1].headers["Retry-After"]) >= 1
    assert (await error_of(resps[-1]))["code"] == "rate_limited"


async def test_a_hammering_address_is_rate_limited(client_with):
    client = await client_with(grab_ip_rate=1, grab_ip_burst=3)
    coupon = await live_coupon(client, stock=100)
    auths = await customers(client, 5)
    resps = [await client.post(coupon.grab_path, headers=a) for a in auths]
    assert [r.status for r in resps] == [201, 201, 201, 429, 429]
    assert resps[-1].headers["Retry-After"] == "1"


async def test_paused_ended_and_unknown(client):
    [auth] = await customers(client, 1)
    paused = await live_coupon(client, status="paused")
    resp = await client.post(paused.grab_path, headers=auth)
    assert (await error_of(resp))["code"] == "campaign_not_active"
    ended = await live_coupon(client, status="ended")
    resp = await client.post(ended.grab_path, headers=auth)
    assert (await error_of(resp))["code"] == "campaign_not_active"
    resp = await client.post("/api/v1/coupons/999999/grab", headers=auth)
    assert resp.status == 404
    resp = await client.post(paused.grab_path)
    assert resp.status == 401


async def test_response_is_the_voucher(client):
    coupon = await live_coupon(client)
    [auth] = await customers(client, 1)
    resp = await client.post(coupon.grab_path, headers=auth)
    voucher = (await resp.json())["voucher"]
    assert voucher["coupon_id"] == coupon.template.id and voucher["status"] == "available"
    valid_from = datetime.fromisoformat(voucher["valid_from"])
    assert datetime.fromisoformat(voucher["valid_until"]) - valid_from == timedelta(days=7)
    await _drain(client)
    row = await Voucher.get(claim_id=voucher["id"])
    assert row.code == voucher["code"] and row.valid_until == datetime.fromisoformat(voucher["valid_until"])


async def test_an_idempotency_key_is_per_coupon(client):
    """Two coupons of one campaign (one hash tag): the same key on each is two requests."""
    first = await live_coupon(client)
    other = await CouponTemplate.create(
        campaign=first.campaign, kind="fixed", title={"zh-CN": "另一张"}, face_value=500, total_stock=5,
        per_user_limit=1, validity_kind="relative", valid_days=7,
    )  # fmt: skip
    await client.server.app[STOCK].load_campaign(first.campaign.id)
    [auth] = await customers(client, 1)
    a = await client.post(first.grab_path, headers={**auth, "Idempotency-Key": "same"})
    b = await client.post(f"/api/v1/coupons/{other.id}/grab", headers={**auth, "Idempotency-Key": "same"})
    assert a.status == b.status == 201
    assert (await a.json())["voucher"]["coupon_id"] == first.template.id
    assert (await b.json())["voucher"]["coupon_id"] == other.id


async def test_coupon_cache_loads_once_for_many_waiters_and_serves_stale_while_reloading(client, monkeypatch):
    from services.stock import coupon_cache

    coupon = await live_coupon(client)
    loads = 0
    real_load = coupon_cache.load_info

    async def counting_load(template_id: int):
        nonlocal loads
        loads += 1
        return await real_load(template_id)

    monkeypatch.setattr(coupon_cache, "load_info", counting_load)
    cache = coupon_cache.CouponCache(ttl=0.2)
    infos = await asyncio.gather(*(cache.get(coupon.template.id) for _ in range(50)))
    assert loads == 1 and all(i.template_id == coupon.template.id for i in infos)
    await asyncio.sleep(0.25)  # expired: the next gets answer at once from the stale entry
    again = await asyncio.gather(*(cache.get(coupon.template.id) for _ in range(50)))
    assert all(i is infos[0] for i in again)
    await asyncio.sleep(0.05)
    assert loads == 2  # one background reload for all of them


async def test_a_replayed_grab_says_so(client):
    coupon = await live_coupon(client, per_user_limit=5)
    [auth] = await customers(client, 1)
    first = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    again = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json()) == (await first.json())


async def test_a_first_refusal_is_the_answer_to_its_retries(client):
    """Sold out, then stock is added: a retry with the key of the refused grab gets the
    same refusal (it is not judged again); a new key is a new grab."""
    coupon = await live_coupon(client, stock=1)
    a, b = await customers(client, 2)
    assert (await client.post(coupon.grab_path, headers=a)).status == 201
    refused = await client.post(coupon.grab_path, headers={**b, "Idempotency-Key": "tap-b"})
    assert refused.status == 409 and (await error_of(refused))["code"] == "coupon_sold_out"
    await client.server.app[STOCK].add_stock(coupon.template.id, 5)
    again = await client.post(coupon.grab_path, headers={**b, "Idempotency-Key": "tap-b"})
    assert again.status == 409 and (await again.json()) == (await refused.json())
    fresh = await client.post(coupon.grab_path, headers={**b, "Idempotency-Key": "tap-b2"})
    assert fresh.status == 201


async def test_a_refusal_before_the_script_is_recorded_too(client):
    from services.campaigns import exclusivity
    from services.core import Actor

    first = await live_coupon(client)
    second = await live_coupon(client)
    await exclusivity.set_exclusive(first.campaign.id, [second.campaign.id], Actor.system())
    [auth] = await customers(client, 1)
    assert (await client.post(first.grab_path, headers=auth)).status == 201
    refused = await client.post(second.grab_path, headers={**auth, "Idempotency-Key": "k"})
    assert (await error_of(refused))["code"] == "exclusive_conflict"
    from models.customers import Customer

    [customer] = await Customer.all()
    record = await client.server.app[REDIS].get(
        CampaignKeys(second.campaign.id).idempotency(customer.id, second.template.id, "k")
    )
    assert record is not None and record.startswith(b"refused:")
    again = await client.post(second.grab_path, headers={**auth, "Idempotency-Key": "k"})
    assert again.status == 409 and (await again.json()) == (await refused.json())
