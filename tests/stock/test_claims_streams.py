"""What loading a campaign into Redis costs when it has no coupons: nothing for the claims
worker to poll (a pass polls every registered stream, so a thousand coupon-less campaigns
would keep it busy for nothing) and no audience set for the grab script."""

from __future__ import annotations

import pytest

from models.customers import Customer
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.audience import rules as audience_rules
from services.stock import STREAMS_REGISTRY, CampaignKeys, ClaimsWorker, backlog, claims, gate
from tests.helpers import count_rows
from tests.journey.fixtures import make_campaign
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import grab


async def test_only_campaigns_with_coupons_register_a_claims_stream(client):
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    plain = await make_campaign()
    with_coupons = await make_campaign(coupons=2)
    for campaign in (plain, with_coupons):
        await stock.load_campaign(campaign.id)
    streams = {s.decode() if isinstance(s, bytes) else s for s in await redis.smembers(STREAMS_REGISTRY)}
    assert streams == {CampaignKeys(with_coupons.id).stream}


async def test_only_targeted_campaigns_with_coupons_load_their_audience(client):
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    await Customer.create(openid="o_gold", membership_tier="gold")
    rule = {"tier": "gold"}
    plain = await make_campaign(visibility="targeted", audience_rule=rule)
    with_coupons = await make_campaign(visibility="targeted", audience_rule=rule, coupons=1)
    for campaign in (plain, with_coupons):
        await stock.load_campaign(campaign.id)
    assert await redis.scard(CampaignKeys(with_coupons.id).audience) == 1
    assert not await redis.exists(CampaignKeys(plain.id).audience)


@pytest.mark.both_redis  # the building set and the live one share a slot on a cluster
async def test_an_audience_loads_a_page_at_a_time_and_replaces_the_set_at_once(client, monkeypatch):
    """Read in pages (100,000 ids in one list held the event loop), built aside and renamed
    into place: a reload never leaves the set empty or half-built for a grab to read, and
    leaves no building set behind."""
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    gold = [await Customer.create(openid=f"o_gold_{i}", membership_tier="gold") for i in range(5)]
    campaign = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"}, coupons=1)
    key = CampaignKeys(campaign.id).audience
    monkeypatch.setattr(gate, "AUDIENCE_PAGE", 2, raising=False)  # absent before: the count fails
    rows = count_rows(monkeypatch)
    await stock.load_campaign(campaign.id)
    assert 0 < rows.most <= 2
    assert {int(m) for m in await redis.smembers(key)} == {c.id for c in gold}
    # A reload while the set is read: the old members stay until the new set replaces them.
    await Customer.filter(id=gold[0].id).update(membership_tier="silver")
    seen: list[int] = []
    real = audience_rules.customer_ids_matching

    async def watching(*args, **kwargs):
        seen.append(await redis.scard(key))
        return await real(*args, **kwargs)

    monkeypatch.setattr(audience_rules, "customer_ids_matching", watching)
    await stock.load_campaign(campaign.id)
    assert seen and min(seen) == 5  # every page read while the full old set was in place
    assert {int(m) for m in await redis.smembers(key)} == {c.id for c in gold[1:]}
    assert await redis.ttl(key) == -1
    assert [k async for k in redis.scan_iter(match=f"{key}:building:*")] == []
    # Nobody left in the rule: no set at all (the grab script reads that as no member).
    await Customer.filter(membership_tier="gold").update(membership_tier="silver")
    await stock.load_campaign(campaign.id)
    assert not await redis.exists(key)


async def _calls(redis, command: str) -> int:
    """Calls of ``command`` the test Redis has served (INFO commandstats)."""
    return int((await redis.info("commandstats")).get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_idle_passes_and_the_backlog_read_many_streams_in_a_few_commands(client, monkeypatch):
    """With thousands of live coupon campaigns, an idle worker pass sent one XREADGROUP per
    stream every 0.4 s, and the backlog (/readyz, /metrics, alerts) one round trip per
    stream. Now one XREADGROUP names many streams, recovery re-claims a window of them in
    turn, and the backlog looks further only at streams with entries."""
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    live = await live_coupon(client, stock=5)
    for _ in range(11):
        await stock.load_campaign((await make_campaign(coupons=1)).id)
    assert await redis.scard(STREAMS_REGISTRY) == 12
    monkeypatch.setattr(claims, "STREAMS_PER_READ", 5, raising=False)  # absent before: the counts fail
    monkeypatch.setattr(claims, "RECOVER_STREAMS_PER_PASS", 5, raising=False)
    worker = ClaimsWorker(redis, min_idle_ms=0)
    await worker.run_once(recover=False)  # the groups made
    reads = await _calls(redis, "xreadgroup")
    assert await worker.run_once(recover=False) == 0
    assert await _calls(redis, "xreadgroup") - reads == 3  # 12 streams, 5 a command
    reads, claimed = await _calls(redis, "xreadgroup"), await _calls(redis, "xautoclaim")
    assert await worker.run_once(recover=True) == 0
    assert await _calls(redis, "xreadgroup") - reads == 6  # own pending and new
    assert await _calls(redis, "xautoclaim") - claimed == 5
    infos = await _calls(redis, "xinfo|groups")
    assert (await backlog(redis)).oldest_age_seconds == 0
    assert await _calls(redis, "xinfo|groups") == infos  # nothing waits: no stream looked into
    # A grab waits in its stream: the backlog sees it, the worker's next pass writes it.
    [auth] = await customers(client, 1)
    await grab(client, live, [auth], persist=False)
    waiting = await backlog(redis)
    assert waiting.lags[CampaignKeys(live.campaign.id).stream] == 1
    assert await _calls(redis, "xinfo|groups") == infos + 1
    assert await worker.run_once(recover=False) == 1
    assert await Voucher.filter(template_id=live.template.id).count() == 1


async def test_recovery_windows_cover_every_stream_in_turn(client, monkeypatch):
    """A dead consumer's entries are re-claimed on every stream, a window a pass."""
    redis = client.server.app[REDIS]
    lives = [await live_coupon(client, stock=5) for _ in range(3)]
    monkeypatch.setattr(claims, "RECOVER_STREAMS_PER_PASS", 2, raising=False)
    auths = await customers(client, 3)
    for live, auth in zip(lives, auths, strict=True):
        await grab(client, live, [auth], persist=False)
    for live in lives:  # read by a consumer that dies before writing them
        stream = CampaignKeys(live.campaign.id).stream
        await redis.xgroup_create(stream, claims.CONSUMER_GROUP, id="0", mkstream=True)
        await redis.xreadgroup(claims.CONSUMER_GROUP, "dead", {stream: ">"})
    worker = ClaimsWorker(redis, min_idle_ms=0)
    handled = [await worker.run_once(recover=True) for _ in range(2)]
    assert handled == [2, 1]  # two streams' stale entries, then the third's
    assert await Voucher.filter(template_id__in=[live.template.id for live in lives]).count() == 3
