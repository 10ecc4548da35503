"""What loading a campaign into Redis costs when it has no coupons: nothing for the claims
worker to poll (a pass polls every registered stream, so a thousand coupon-less campaigns
would keep it busy for nothing) and no audience set for the grab script."""

from __future__ import annotations

from models.customers import Customer
from server.keys import REDIS, STOCK
from services.audience import rules as audience_rules
from services.stock import STREAMS_REGISTRY, CampaignKeys, gate
from tests.helpers import count_rows
from tests.journey.fixtures import make_campaign


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
