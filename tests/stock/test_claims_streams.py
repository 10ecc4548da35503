"""What loading a campaign into Redis costs when it has no coupons: nothing for the claims
worker to poll (a pass polls every registered stream, so a thousand coupon-less campaigns
would keep it busy for nothing) and no audience set for the grab script."""

from __future__ import annotations

from models.customers import Customer
from server.keys import REDIS, STOCK
from services.stock import STREAMS_REGISTRY, CampaignKeys
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
