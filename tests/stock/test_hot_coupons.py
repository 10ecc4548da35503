"""Hot coupons (stock split over K Redis slots, services/stock/hot.py) under real
concurrency over HTTP, on one Redis and on the 3-master cluster: no oversell, nothing
unsold after the sweep, per-customer limits and the budget exact, the database and Redis
in agreement, and reconciliation rebuilding the buckets."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from redis.crc import key_slot

from models.campaigns import Campaign
from models.customers import Customer
from models.journey import RewardGrant
from models.vouchers import Voucher
from server.keys import JOURNEY, REDIS, STOCK
from services.core import text
from services.stock import CampaignKeys, ClaimsWorker, Stock, home_bucket, stock_left
from services.stock import reconcile as stock_reconcile
from services.stock import sync as stock_sync
from tests.helpers import error_of
from tests.stock.fixtures import LiveCoupon, customers, grab_all, live_coupon

pytestmark = pytest.mark.both_redis

K = 4


def _worker(client: Any) -> ClaimsWorker:
    return ClaimsWorker(client.server.app[REDIS], min_idle_ms=0)


async def _buckets(client: Any, coupon: LiveCoupon) -> list[int]:
    """Each bucket's stock, read from Redis."""
    redis = client.server.app[REDIS]
    return [
        int(await redis.hget(CampaignKeys(coupon.campaign.id, b).coupon(coupon.template.id), "stock") or 0)
        for b in range(K)
    ]


async def _holders(client: Any, coupon: LiveCoupon) -> dict[int, int]:
    """Every customer's count in Redis, over the buckets' holders hashes (each customer
    is counted in one bucket only: its home)."""
    redis = client.server.app[REDIS]
    found: dict[int, int] = {}
    for bucket in range(K):
        raw = await redis.hgetall(CampaignKeys(coupon.campaign.id, bucket).holders(coupon.template.id))
        for customer, n in raw.items():
            assert int(customer) not in found, "a customer counted in two buckets"
            assert home_bucket(int(customer), K) == bucket
            if int(n):
                found[int(customer)] = int(n)
    return found


async def _in_database(coupon: LiveCoupon) -> dict[int, int]:
    owners = await Voucher.filter(template_id=coupon.template.id).values_list("customer_id", flat=True)
    return dict(Counter(int(o) for o in owners))  # type: ignore[arg-type]


async def _left(client: Any, coupon: LiveCoupon) -> int:
    left = await stock_left(
        client.server.app[REDIS], coupon.campaign.id, {coupon.template.id: coupon.template.total_stock}
    )
    return left[coupon.template.id][0]


async def test_load_splits_stock_and_reports_the_sum(client_with):
    client = await client_with()
    coupon = await live_coupon(client, stock=103, stock_buckets=K)
    assert await _buckets(client, coupon) == [26, 26, 26, 25]
    assert await _left(client, coupon) == 103


async def test_keys_of_a_bucket_share_one_slot(client_with, redis_kind):
    client = await client_with()
    coupon = await live_coupon(client, stock=8, stock_buckets=K)
    redis = client.server.app[REDIS]
    slots = []
    for bucket in range(K):
        keys = CampaignKeys(coupon.campaign.id, bucket)
        names = [
            keys.coupon(coupon.template.id), keys.holders(coupon.template.id), keys.stream, keys.rate(7),
            keys.recent(7), keys.idempotency(7, coupon.template.id, "k"),
        ]  # fmt: skip
        if redis_kind == "redis-cluster":
            found = {int(await redis.execute_command("CLUSTER KEYSLOT", name)) for name in names}
        else:
            found = {key_slot(name.encode()) for name in names}
        assert len(found) == 1, (bucket, found)
        slots.append(found.pop())
    assert len(set(slots)) == K  # each bucket its own slot
    assert slots[0] == key_slot(CampaignKeys(coupon.campaign.id).budget.encode())


async def test_400_customers_at_once_for_100_units_in_4_buckets(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=100, stock_buckets=K)
    auths = await customers(client, 400)
    statuses = await grab_all(client, coupon.grab_path, auths)
    # Demand exceeds stock: every unit goes (a grab falls through to the other buckets),
    # none twice.
    assert statuses.count(201) == 100 and statuses.count(409) == 300
    assert await _buckets(client, coupon) == [0, 0, 0, 0]
    assert await client.server.app[STOCK].sweep(coupon.campaign.id) == 0
    assert await _left(client, coupon) == 0
    assert await _worker(client).drain() == 100
    held = await _in_database(coupon)
    assert sum(held.values()) == 100 and max(held.values()) == 1
    assert await _holders(client, coupon) == held


async def test_limit_two_exact_with_ten_grabs_each_at_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000, grab_user_max=1000)
    coupon = await live_coupon(client, stock=1000, per_user_limit=2, stock_buckets=K)
    auths = await customers(client, 40)
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in auths for _ in range(10)))
    assert sorted(r.status for r in resps).count(201) == 80
    for resp in resps:
        if resp.status != 201:
            assert resp.status == 409 and (await error_of(resp))["code"] == "coupon_limit_reached"
    await _worker(client).drain()
    held = await _in_database(coupon)
    assert len(held) == 40 and set(held.values()) == {2}
    assert await _holders(client, coupon) == held
    assert await _left(client, coupon) == 1000 - 80


async def test_budget_exact_across_buckets(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=100, face_value=1000, budget_limit=30_500, stock_buckets=K)
    auths = await customers(client, 200)
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in auths))
    assert sorted(r.status for r in resps).count(201) == 30
    codes = {(await error_of(r))["code"] for r in resps if r.status != 201}
    assert codes == {"budget_exhausted"}
    redis = client.server.app[REDIS]
    assert int(await redis.get(CampaignKeys(coupon.campaign.id).budget)) == 500
    await _worker(client).drain()
    assert (await Campaign.get(id=coupon.campaign.id)).budget_spent == 30_000
    held = await _in_database(coupon)
    assert sum(held.values()) == 30
    assert await _holders(client, coupon) == held  # refused customers' reservations given back
    assert await _left(client, coupon) == 70


async def test_sweep_moves_leftovers_into_bucket_zero_and_they_sell(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=40, stock_buckets=K)
    first = await customers(client, 10, prefix="o_first")
    assert (await grab_all(client, coupon.grab_path, first)).count(201) == 10
    stock: Stock = client.server.app[STOCK]
    elsewhere = sum((await _buckets(client, coupon))[1:])
    assert elsewhere > 0
    assert await stock.sweep(coupon.campaign.id) == elsewhere
    assert await _buckets(client, coupon) == [30, 0, 0, 0]
    assert await _left(client, coupon) == 30
    # Customers of every home bucket still get the rest: their home is empty, bucket 0 not.
    rest = await customers(client, 60, prefix="o_rest")
    statuses = await grab_all(client, coupon.grab_path, rest)
    assert statuses.count(201) == 30 and statuses.count(409) == 30
    assert await _left(client, coupon) == 0
    await _worker(client).drain()
    assert await Voucher.filter(template_id=coupon.template.id).count() == 40


async def test_periodic_sweep_once_a_bucket_ran_dry(client_with):
    client = await client_with()
    coupon = await live_coupon(client, stock=20, stock_buckets=K)
    redis = client.server.app[REDIS]
    stock: Stock = client.server.app[STOCK]
    assert await stock_sync.sweep_hot_coupons(stock) == 0  # every bucket has stock: left alone
    await redis.hset(CampaignKeys(coupon.campaign.id, 2).coupon(coupon.template.id), "stock", 0)
    assert await stock_sync.sweep_hot_coupons(stock) == 10
    assert await _buckets(client, coupon) == [15, 0, 0, 0]


async def test_ending_the_campaign_sweeps(client_with):
    client = await client_with()
    coupon = await live_coupon(client, stock=20, stock_buckets=K)
    await Campaign.filter(id=coupon.campaign.id).update(status="ended")
    await stock_sync.after_transition(client.server.app[STOCK], coupon.campaign.id, "ended")
    assert await _buckets(client, coupon) == [20, 0, 0, 0]


async def test_reconcile_rebuilds_buckets_and_drops_leftover_reservations(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=50, per_user_limit=2, budget_limit=100_000, stock_buckets=K)
    auths = await customers(client, 20)
    assert (await grab_all(client, coupon.grab_path, auths)).count(201) == 20
    redis = client.server.app[REDIS]
    stock: Stock = client.server.app[STOCK]
    assert await _worker(client).drain() == 20
    # A grab that crashed after its first step: the coupon has a budget, so the home
    # bucket only reserved one of the customer's limit (the count is one too high).
    customer = next(iter(await _in_database(coupon)))
    home = CampaignKeys(coupon.campaign.id, home_bucket(customer, K))
    raw = await stock.hot._grab(
        keys=[
            home.coupon(coupon.template.id), home.holders(coupon.template.id), home.stream,
            home.idempotency(customer, coupon.template.id, "-"), home.rate(customer), home.recent(customer),
        ],
        args=[customer, int(time.time() * 1000), "c", "d", coupon.template.id, 60, 100, 1000, "0", 1000, 5],
    )  # fmt: skip
    assert text(raw[0]) == "reserved"
    assert (await _holders(client, coupon))[customer] == 2
    # ...and a lost bucket.
    await redis.delete(CampaignKeys(coupon.campaign.id, 3).coupon(coupon.template.id))
    reports = await stock_reconcile.reconcile(stock, _worker(client), coupon.template.id)
    [report] = reports
    assert report.issued == 20 and report.stock_after == 30 and report.holders_corrected == 1
    assert sum(await _buckets(client, coupon)) == 30
    assert await _holders(client, coupon) == await _in_database(coupon)
    # The rebuilt coupon sells what is left, and no more.
    more = await customers(client, 40, prefix="o_more")
    assert (await grab_all(client, coupon.grab_path, more)).count(201) == 30
    await _worker(client).drain()
    assert await Voucher.filter(template_id=coupon.template.id).count() == 50
    assert (await Campaign.get(id=coupon.campaign.id)).budget_spent == 50_000


async def test_a_grant_of_a_hot_coupon_is_refused(client_with):
    # Grants (rewards, automation) decide in the campaign's slot only: they would miss
    # the counts and stock of the other buckets.
    client = await client_with()
    coupon = await live_coupon(client, stock=20, stock_buckets=K)
    customer = (await Customer.create(openid="o_grant_1")).id
    grant = await RewardGrant.create(
        participation_id=None, ref=f"automation:1:{customer}", customer_id=customer, campaign_id=coupon.campaign.id,
        template_id=coupon.template.id, trigger="automation",
    )  # fmt: skip
    assert await client.server.app[JOURNEY].rewards.issue_pending([grant.id]) == 0
    assert (await RewardGrant.get(id=grant.id)).refusal == "hot_coupon"
    assert await _left(client, coupon) == 20


@pytest.mark.parametrize("budget", [None, 100_000])
async def test_idempotency_key_replays_a_hot_grab_and_its_refusal(client_with, budget):
    client = await client_with()
    coupon = await live_coupon(client, stock=4, per_user_limit=1, budget_limit=budget, stock_buckets=K)
    [auth] = await customers(client, 1)
    first = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    again = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-1"})
    assert first.status == again.status == 201
    assert (await first.json())["voucher"] == (await again.json())["voucher"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    refused = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-2"})
    assert (await error_of(refused))["code"] == "coupon_limit_reached"
    replayed = await client.post(coupon.grab_path, headers={**auth, "Idempotency-Key": "tap-2"})
    assert (await error_of(replayed))["code"] == "coupon_limit_reached"
    assert await _left(client, coupon) == 3


async def test_a_hot_claim_carries_the_request_id_into_its_bucket_stream(client_with):
    """Both ways a hot grab writes its claim (the home bucket's script, and taking stock
    from another bucket once the home one ran dry) record the request id, as the plain
    grab does, so the claims worker's log line names the request that caused it."""
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    coupon = await live_coupon(client, stock=2, stock_buckets=2)  # one unit in each bucket
    auths = await customers(client, 8, prefix="o_hot_rid")
    ids = await Customer.filter(openid__startswith="o_hot_rid_").order_by("id").values_list("id", flat=True)
    first, second = [auth for auth, cid in zip(auths, ids, strict=True) if home_bucket(int(cid), 2) == 0][:2]
    assert (await client.post(coupon.grab_path, headers={**first, "X-Request-ID": "rid-hot-home"})).status == 201
    assert (await client.post(coupon.grab_path, headers={**second, "X-Request-ID": "rid-hot-other"})).status == 201
    redis = client.server.app[REDIS]
    found = {}
    for bucket in (0, 1):
        for _, fields in await redis.xrange(CampaignKeys(coupon.campaign.id, bucket).stream):
            found[bucket] = {text(k): text(v) for k, v in fields.items()}.get("rid")
    assert found == {0: "rid-hot-home", 1: "rid-hot-other"}
