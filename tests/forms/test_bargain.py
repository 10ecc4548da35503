"""Bargains and assists over HTTP, against real Redis (single and cluster) and the real
database: hundreds of concurrent helpers, the draw replayed, a worker killed mid-burst."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.bargains import Bargain, BargainCut
from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.journey import RewardGrant
from models.participations import Participation
from server.keys import BARGAINS, REDIS, STOCK
from services.forms import BargainKeys, BargainWorker, replay_cut
from tests.helpers import collect_sockets_of_a_stopped_app, error_of
from tests.stock.fixtures import customers

pytestmark = pytest.mark.both_redis


async def _campaign(client: TestClient, kind: str = "bargain", **spec: Any) -> Campaign:
    now = datetime.now(UTC)
    rules = {"start_price": 10_000, "floor_price": 0, "cut_min": 1, "cut_max": 10, "helpers_needed": None,
             "help_limit": 1, "hours": 24, **spec}  # fmt: skip
    row = await Campaign.create(
        type=kind, status="active", content={"zh-CN": {"title": "砍一刀"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1, bargain=rules,
        reward_points=5,
    )  # fmt: skip
    await CouponTemplate.create(
        campaign=row, kind="fixed", title={"zh-CN": "底价购"}, face_value=rules["start_price"] - rules["floor_price"]
        or 100, total_stock=100, per_user_limit=1, validity_kind="relative", valid_days=7,
    )  # fmt: skip
    await client.server.app[STOCK].load_campaign(row.id)
    return row


async def _start(client: TestClient, campaign: Campaign, auth: dict[str, str]) -> dict[str, Any]:
    resp = await client.post("/api/v1/bargains", json={"campaign_id": campaign.id}, headers=auth)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["created"] is True
    return body["bargain"]  # type: ignore[no-any-return]


async def _help_all(client: TestClient, bargain_id: int, auths: list[dict[str, str]]) -> list[tuple[int, Any]]:
    """Every helper at once; a help shed with 503 redis_unavailable (the pool waited too
    long on a loaded machine, before the script ran) is retried, as the mini program does."""
    path = f"/api/v1/bargains/{bargain_id}/help"
    answers: dict[int, tuple[int, Any]] = {}
    waiting = list(range(len(auths)))
    for _ in range(5):
        resps = await asyncio.gather(*(client.post(path, headers=auths[i]) for i in waiting))
        for i, resp in zip(waiting, resps, strict=True):
            answers[i] = (resp.status, await resp.json())
        waiting = [i for i in waiting if answers[i][0] == 503]
        if not waiting:
            break
    return [answers[i] for i in range(len(auths))]


async def _drain(client: TestClient) -> None:
    await BargainWorker(client.server.app[REDIS], min_idle_ms=0).drain()


async def _check_cuts(bargain_id: int, oks: list[dict[str, Any]]) -> Bargain:
    """Every 2xx help is one cut row, numbered 1..n, and the rows replay from the seed."""
    bargain = await Bargain.get(id=bargain_id)
    cuts = await BargainCut.filter(bargain_id=bargain_id).order_by("seq")
    assert [c.seq for c in cuts] == list(range(1, len(oks) + 1))
    assert sorted(c.seq for c in cuts) == sorted(o["seq"] for o in oks)
    assert {c.seq: c.cut for c in cuts} == {o["seq"]: o["cut"] for o in oks}
    assert len({c.helper_customer_id for c in cuts}) == len(cuts)
    price = bargain.start_price
    for c in cuts:
        assert c.price_before == price and c.price_after == price - c.cut
        draw = replay_cut(
            seed=bargain.seed, seq=c.seq, mode=bargain.mode, price_before=c.price_before, floor=bargain.floor_price,
            cut_min=bargain.cut_min, cut_max=bargain.cut_max, helpers_needed=bargain.helpers_needed,
        )  # fmt: skip
        assert (draw.cut, draw.lo, draw.hi, draw.u, draw.attempt) == (c.cut, c.lo, c.hi, c.draw, c.retries)
        price -= c.cut
    assert price >= bargain.floor_price
    assert bargain.price == price == bargain.start_price - sum(c.cut for c in cuts)
    assert bargain.helpers == len(cuts)
    return bargain


async def test_500_concurrent_helpers_none_lost_none_refused(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    # 500 helps cut at most 500 x 10 fen: the floor is never reached, so every help is a 201.
    campaign = await _campaign(client, start_price=100_000, cut_min=1, cut_max=10)
    owner, *helpers = await customers(client, 501, prefix="o_bh")
    bargain = await _start(client, campaign, owner)
    answers = await _help_all(client, bargain["id"], helpers)
    assert [s for s, _ in answers] == [201] * 500
    oks = [body for _, body in answers]
    assert sorted(o["seq"] for o in oks) == list(range(1, 501))
    final = min(o["price"] for o in oks)
    assert final == 100_000 - sum(o["cut"] for o in oks)
    resp = await client.get(f"/api/v1/bargains/{bargain['id']}", headers=owner)
    page = await resp.json()
    assert page["price"] == final and page["helpers"] == 500 and len(page["cuts"]) == 500
    assert page["seed"] is None  # not finished: the seed stays secret
    await _drain(client)
    await _check_cuts(bargain["id"], oks)


async def test_500_helpers_on_a_bargain_that_finishes_at_300(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, start_price=50_000, floor_price=20_000, cut_min=50, cut_max=150,
                               helpers_needed=300)  # fmt: skip
    owner, *helpers = await customers(client, 501, prefix="o_bf")
    bargain = await _start(client, campaign, owner)
    answers = await _help_all(client, bargain["id"], helpers)
    statuses = [s for s, _ in answers]
    assert statuses.count(201) == 300 and statuses.count(409) == 200
    assert {b["error"]["code"] for s, b in answers if s == 409} == {"bargain_finished"}
    oks = [b for s, b in answers if s == 201]
    assert sum(o["cut"] for o in oks) == 30_000  # exactly down to the floor
    assert [o["finished"] for o in oks].count(True) == 1
    await _drain(client)
    done = await _check_cuts(bargain["id"], oks)
    assert done.price == 20_000 and done.finished_at is not None
    page = await (await client.get(f"/api/v1/bargains/{bargain['id']}", headers=owner)).json()
    assert page["finished"] is True and page["seed"] == done.seed


async def test_the_last_draw_takes_exactly_the_rest_to_the_floor(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    # No helpers_needed: draws of 30-70 fen from 1,000 to 0: the helper who reaches the floor takes the rest.
    campaign = await _campaign(client, start_price=1_000, floor_price=0, cut_min=30, cut_max=70)
    owner, *helpers = await customers(client, 100, prefix="o_bl")
    bargain = await _start(client, campaign, owner)
    answers = await _help_all(client, bargain["id"], helpers)
    oks = [b for s, b in answers if s == 201]
    assert sum(o["cut"] for o in oks) == 1_000 and 15 <= len(oks) <= 34
    assert {b["error"]["code"] for s, b in answers if s != 201} == {"bargain_finished"}
    await _drain(client)
    await _check_cuts(bargain["id"], oks)


async def test_refusals_own_twice_limit_expired_and_claim_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, start_price=300, floor_price=100, cut_min=10, cut_max=20, helpers_needed=2)
    a, b, c, d = await customers(client, 4, prefix="o_br")
    first = await _start(client, campaign, a)
    again = await client.post("/api/v1/bargains", json={"campaign_id": campaign.id}, headers=a)
    assert again.status == 200 and (await again.json())["bargain"]["id"] == first["id"]
    second = await _start(client, campaign, b)
    help_path = f"/api/v1/bargains/{first['id']}/help"
    own = await client.post(help_path, headers=a)
    assert own.status == 403 and (await error_of(own))["code"] == "own_bargain"
    claim_early = await client.post(f"/api/v1/bargains/{first['id']}/claim", headers=a)
    assert claim_early.status == 409 and (await error_of(claim_early))["code"] == "bargain_not_finished"
    assert (await client.post(help_path, headers=c)).status == 201
    twice = await client.post(help_path, headers=c)
    assert twice.status == 409 and (await error_of(twice))["code"] == "already_helped"
    # help_limit 1: c helped one bargain of this campaign already.
    other = await client.post(f"/api/v1/bargains/{second['id']}/help", headers=c)
    assert other.status == 409 and (await error_of(other))["code"] == "help_limit_reached"
    assert (await error_of(other))["details"] == {"help_limit": 1}
    last = await client.post(help_path, headers=d)
    body = await last.json()
    assert last.status == 201 and body["finished"] is True and body["price"] == 100
    # Claims at once: one wins; the reward (points, coupon grant) exists once.
    claims = await asyncio.gather(*(client.post(f"/api/v1/bargains/{first['id']}/claim", headers=a) for _ in range(20)))
    assert sorted(r.status for r in claims) == [200] * 19 + [201]
    who = (await Bargain.get(id=first["id"])).customer_id
    assert await RewardGrant.filter(customer_id=who, campaign_id=campaign.id).count() == 1
    part = await Participation.get(campaign_id=campaign.id, customer_id=who)
    assert part.status == "completed"
    # Someone else's bargain cannot be claimed.
    foreign = await client.post(f"/api/v1/bargains/{first['id']}/claim", headers=b)
    assert foreign.status == 404
    # Time runs out.
    await Bargain.filter(id=second["id"]).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await client.server.app[REDIS].delete(BargainKeys(campaign.id, second["id"]).state)
    late = await client.post(f"/api/v1/bargains/{second['id']}/help", headers=d)
    assert late.status == 409 and (await error_of(late))["code"] == "bargain_expired"


async def test_a_bargains_coupon_is_its_reward_not_grabbed(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client)
    [auth] = await customers(client, 1, prefix="o_bgr")
    template = await CouponTemplate.get(campaign_id=campaign.id)
    resp = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=auth)
    assert resp.status == 403
    assert (await error_of(resp))["details"] == {"reason": "reward_only"}


async def test_assist_counts_helpers(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, kind="assist", helpers_needed=50)
    owner, *helpers = await customers(client, 81, prefix="o_ba")
    bargain = await _start(client, campaign, owner)
    answers = await _help_all(client, bargain["id"], helpers)
    statuses = [s for s, _ in answers]
    assert statuses.count(201) == 50 and statuses.count(409) == 30
    await _drain(client)
    row = await Bargain.get(id=bargain["id"])
    assert row.helpers == 50 and row.finished_at is not None
    assert await BargainCut.filter(bargain_id=row.id).count() == 50


async def test_worker_killed_mid_burst_every_help_once_then_reconcile(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    campaign = await _campaign(client, start_price=100_000, cut_min=1, cut_max=10, help_limit=2)
    owners = await customers(client, 2, prefix="o_bko")
    helpers = await customers(client, 300, prefix="o_bkh")
    first = await _start(client, campaign, owners[0])
    second = await _start(client, campaign, owners[1])
    # A worker with small batches runs during the burst and is killed (cancelled) mid-way:
    # some entries persisted, some read but not acknowledged, some never read.
    worker = asyncio.create_task(BargainWorker(redis, batch=20, name="doomed").run_forever(idle_sleep=0.001))
    burst = asyncio.gather(
        _help_all(client, first["id"], helpers), _help_all(client, second["id"], helpers[:150])
    )  # fmt: skip
    await asyncio.sleep(0.3)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    a, b = await burst
    assert [s for s, _ in a] == [201] * 300 and [s for s, _ in b] == [201] * 150
    # After the restart another consumer takes over the dead one's pending entries.
    await _drain(client)
    for bargain, answers in ((first, a), (second, b)):
        await _check_cuts(bargain["id"], [body for _, body in answers])
    keys = BargainKeys(campaign.id, first["id"])
    before = await redis.hgetall(keys.state), await redis.lrange(keys.cuts, 0, -1), await redis.hgetall(keys.helps)
    # Redis loses the campaign's bargain state: reconcile rebuilds it from the database.
    await redis.delete(keys.state, keys.cuts, keys.helpers, keys.helps, keys.helps_loaded)
    assert await client.server.app[BARGAINS].reconcile(campaign.id) == 2
    after = await redis.hgetall(keys.state), await redis.lrange(keys.cuts, 0, -1), await redis.hgetall(keys.helps)
    assert after == before
    assert len(before[2]) == 300 and {int(v) for v in before[2].values()} == {1, 2}
    # And the rebuilt state still refuses a helper at their limit.
    over = await client.post(f"/api/v1/bargains/{first['id']}/help", headers=helpers[0])
    assert over.status == 409 and (await error_of(over))["code"] == "already_helped"


async def test_not_a_bargain_and_malformed_input(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    [auth] = await customers(client, 1, prefix="o_bm")
    now = datetime.now(UTC)
    plain = await Campaign.create(
        type="offer", status="active", content={"zh-CN": {"title": "x"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1,
    )  # fmt: skip
    resp = await client.post("/api/v1/bargains", json={"campaign_id": plain.id}, headers=auth)
    assert resp.status == 409 and (await error_of(resp))["code"] == "not_a_bargain"
    resp = await client.post("/api/v1/bargains", json={"campaign_id": "x"}, headers=auth)
    assert resp.status == 422
    resp = await client.post("/api/v1/bargains/999999/help", headers=auth)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    resp = await client.get("/api/v1/bargains/999999", headers=auth)
    assert resp.status == 404
    assert (await client.post("/api/v1/bargains", json={"campaign_id": plain.id})).status == 401
    assert await Customer.filter(openid__startswith="o_bm").count() == 1


async def _red_packet(client: TestClient, **spec: Any) -> Campaign:
    now = datetime.now(UTC)
    rules = {"initial_value": 100, "cap": 10_100, "min_increment": 10, "helpers_needed": 200, "help_limit": 1,
             "hours": 24, **spec}  # fmt: skip
    return await Campaign.create(
        type="red_packet", status="active", content={"zh-CN": {"title": "膨胀红包"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1, red_packet=rules,
    )  # fmt: skip


async def test_red_packet_never_over_budget_under_concurrency_and_paid_once(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _red_packet(client)
    owner, *helpers = await customers(client, 301, prefix="o_rp")
    packet = await _start(client, campaign, owner)
    assert packet["mode"] == "red_packet" and packet["value"] == 100
    answers = await _help_all(client, packet["id"], helpers)
    statuses = [s for s, _ in answers]
    assert statuses.count(201) == 200 and statuses.count(409) == 100
    assert {b["error"]["code"] for s, b in answers if s == 409} == {"bargain_finished"}
    oks = [b for s, b in answers if s == 201]
    increments = [o["cut"] for o in oks]
    # Exactly the budget, every helper at least the minimum, never above the cap on the way.
    assert sum(increments) == 10_000 and min(increments) >= 10
    assert min(o["price"] for o in oks) == 0 and all(o["price"] >= 0 for o in oks)
    await _drain(client)
    row = await _check_cuts(packet["id"], oks)
    for c in await BargainCut.filter(bargain_id=row.id).order_by("seq"):
        left = 200 - c.seq + 1
        if c.seq < 200:  # double-mean: at most twice the mean share of what was left
            assert c.lo == 10 and c.hi == min(2 * c.price_before // left, c.price_before - (left - 1) * 10)
    claims = await asyncio.gather(*(client.post(f"/api/v1/bargains/{packet['id']}/claim", headers=owner)
                                    for _ in range(20)))  # fmt: skip
    assert sorted(r.status for r in claims) == [200] * 19 + [201]
    balance = await (await client.get("/api/v1/me/points", headers=owner)).json()
    assert balance["balance"] == 10_100


async def test_an_expired_red_packet_pays_what_it_reached(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _red_packet(client, helpers_needed=50)
    owner, *helpers = await customers(client, 6, prefix="o_rpx")
    packet = await _start(client, campaign, owner)
    answers = await _help_all(client, packet["id"], helpers)
    assert [s for s, _ in answers] == [201] * 5
    early = await client.post(f"/api/v1/bargains/{packet['id']}/claim", headers=owner)
    assert early.status == 409 and (await error_of(early))["code"] == "bargain_not_finished"
    reached = 100 + sum(b["cut"] for _, b in answers)
    await Bargain.filter(id=packet["id"]).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    resp = await client.post(f"/api/v1/bargains/{packet['id']}/claim", headers=owner)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["bargain"]["value"] == reached
    balance = await (await client.get("/api/v1/me/points", headers=owner)).json()
    assert balance["balance"] == reached


async def test_server_stopped_mid_burst_every_decided_help_once_after_restart(client_with):
    # The app runs its workers (the bargain-helps worker among them) and is stopped while
    # 400 helps are in flight: answers are lost, entries are left read but unacknowledged.
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000, run_workers=True)
    campaign = await _campaign(client, start_price=100_000, cut_min=1, cut_max=10)
    owner, *helpers = await customers(client, 401, prefix="o_bsk")
    bargain = await _start(client, campaign, owner)
    path = f"/api/v1/bargains/{bargain['id']}/help"

    async def one(auth: dict[str, str]) -> tuple[int, Any] | BaseException:
        try:
            resp = await client.post(path, headers=auth)
            return resp.status, await resp.json()
        except (Exception, asyncio.CancelledError) as exc:  # the server (and its client) went away under it
            return exc

    burst = asyncio.gather(*(one(a) for a in helpers))
    state = BargainKeys(campaign.id, bargain["id"]).state
    for _ in range(3000):  # mid-burst: once 50 helps were decided
        if int(await client.server.app[REDIS].hget(state, "n") or 0) >= 50:
            break
        await asyncio.sleep(0.01)
    restarted = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)  # stops the first app
    answers = await burst
    collect_sockets_of_a_stopped_app()
    redis = restarted.server.app[REDIS]
    await BargainWorker(redis, min_idle_ms=0).drain()
    oks = [a[1] for a in answers if isinstance(a, tuple) and a[0] == 201]
    assert all(a[0] in (201, 503) for a in answers if isinstance(a, tuple))
    decided = int(await redis.hget(BargainKeys(campaign.id, bargain["id"]).state, "n"))
    assert decided >= max(50, len(oks))
    # Every help the script decided is in the database once, answered or not, and
    # replays from the seed; every 201 answered is one of them with its cut.
    cuts = await BargainCut.filter(bargain_id=bargain["id"]).order_by("seq")
    assert [c.seq for c in cuts] == list(range(1, decided + 1))
    by_seq = {c.seq: c.cut for c in cuts}
    assert all(by_seq[o["seq"]] == o["cut"] for o in oks)
    row = await Bargain.get(id=bargain["id"])
    assert row.helpers == decided and row.price == 100_000 - sum(by_seq.values())
    assert int(await redis.hget(BargainKeys(campaign.id, bargain["id"]).state, "price")) == row.price
    # Reconcile after losing Redis rebuilds the same state.
    keys = BargainKeys(campaign.id, bargain["id"])
    before = await redis.hgetall(keys.state), await redis.lrange(keys.cuts, 0, -1), await redis.hgetall(keys.helps)
    await redis.delete(keys.state, keys.cuts, keys.helpers, keys.helps, keys.helps_loaded)
    await restarted.server.app[BARGAINS].reconcile(campaign.id)
    after = await redis.hgetall(keys.state), await redis.lrange(keys.cuts, 0, -1), await redis.hgetall(keys.helps)
    assert after == before
