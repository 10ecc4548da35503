"""Mutually exclusive campaigns under real concurrency: a customer never ends up taking
part in two of them, whatever arrives at the same moment (grab and grab, join and grab),
on one Redis and on a Redis Cluster (where the campaigns live on different slots)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.customers import Customer
from models.participations import Participation
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.campaigns import exclusivity
from services.core import Actor
from services.stock import ClaimsWorker, ExclusiveMarks
from services.stock.reconcile import reconcile
from tests.helpers import error_of
from tests.journey.fixtures import make_campaign
from tests.stock.fixtures import customers, live_coupon

pytestmark = pytest.mark.both_redis

CUSTOMERS = 200


async def _post_all(client: TestClient, calls: list[tuple[str, dict[str, str]]]) -> list[Any]:
    """Every call at once; a call shed with 503 (a Redis connection waited for too long
    on a loaded machine) is sent again, as the mini program does. The final answers."""
    answers: dict[int, Any] = {}
    waiting = list(range(len(calls)))
    for _ in range(5):
        resps = await asyncio.gather(*(client.post(calls[i][0], headers=calls[i][1]) for i in waiting))
        for i, resp in zip(waiting, resps, strict=True):
            answers[i] = resp
        waiting = [i for i in waiting if answers[i].status == 503]
        if not waiting:
            break
    return [answers[i] for i in range(len(calls))]


async def _customer_ids() -> list[int]:
    return list(await Customer.all().order_by("id").values_list("id", flat=True))  # type: ignore[arg-type]


async def test_200_customers_grab_two_exclusive_campaigns_at_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    first = await live_coupon(client, stock=1000)
    second = await live_coupon(client, stock=1000)
    await exclusivity.set_exclusive(first.campaign.id, [second.campaign.id], Actor.system())
    auths = await customers(client, CUSTOMERS)
    calls = [(path, auth) for auth in auths for path in (first.grab_path, second.grab_path)]
    resps = await _post_all(client, calls)
    for resp in resps:
        if resp.status != 201:
            assert resp.status == 409, await resp.text()
            assert (await error_of(resp))["code"] == "exclusive_conflict"
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    holders: dict[int, set[int]] = {}
    for customer_id, campaign_id in await Voucher.all().values_list("customer_id", "campaign_id"):
        holders.setdefault(customer_id, set()).add(campaign_id)  # type: ignore[arg-type]
    assert [c for c, held in holders.items() if len(held) > 1] == []
    # Each customer got exactly one of the two: the refusal is never spurious.
    assert sorted(holders) == await _customer_ids()
    assert sum(1 for r in resps if r.status == 201) == CUSTOMERS


async def test_200_customers_join_one_and_grab_the_exclusive_other_at_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    joinable = await make_campaign()
    coupon = await live_coupon(client, stock=1000)
    await exclusivity.set_exclusive(joinable.id, [coupon.campaign.id], Actor.system())
    auths = await customers(client, CUSTOMERS)
    join_path = f"/api/v1/campaigns/{joinable.id}/join"
    calls = [(path, auth) for auth in auths for path in (join_path, coupon.grab_path)]
    resps = await _post_all(client, calls)
    for resp in resps:
        if resp.status not in (200, 201):
            assert resp.status == 409, await resp.text()
            assert (await error_of(resp))["code"] == "exclusive_conflict"
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    joined = set(await Participation.filter(campaign_id=joinable.id).values_list("customer_id", flat=True))
    holding = set(await Voucher.filter(campaign_id=coupon.campaign.id).values_list("customer_id", flat=True))
    assert joined & holding == set()
    assert sorted(joined | holding) == await _customer_ids()


async def test_sequential_second_is_refused_after_the_markers_were_lost(client):
    """A Redis loss takes the markers; the database still refuses the second campaign,
    and reconciliation puts the markers back from it."""
    first = await live_coupon(client)
    second = await live_coupon(client)
    await exclusivity.set_exclusive(first.campaign.id, [second.campaign.id], Actor.system())
    [auth] = await customers(client, 1)
    [customer_id] = await _customer_ids()
    assert (await client.post(first.grab_path, headers=auth)).status == 201
    resp = await client.post(second.grab_path, headers=auth)
    assert resp.status == 409 and (await error_of(resp))["details"]["campaign_ids"] == [first.campaign.id]
    redis = client.server.app[REDIS]
    marks = ExclusiveMarks(redis)
    assert await marks.held(customer_id) == {first.campaign.id}
    worker = ClaimsWorker(redis, min_idle_ms=0)
    await worker.drain()
    await redis.delete(marks.key(customer_id))  # Redis lost them
    await reconcile(client.server.app[STOCK], worker)
    assert await marks.held(customer_id) == {first.campaign.id}
    resp = await client.post(second.grab_path, headers=auth)
    assert resp.status == 409 and (await error_of(resp))["code"] == "exclusive_conflict"
