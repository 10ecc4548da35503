"""Which campaigns the claims worker polls: a claims stream is registered only for a
campaign with coupons (a pass of the worker polls every registered stream, so a
thousand coupon-less campaigns would keep it busy for nothing)."""

from __future__ import annotations

from server.keys import REDIS, STOCK
from services.stock_keys import STREAMS_REGISTRY, CampaignKeys
from tests.journey_fixtures import make_campaign


async def test_only_campaigns_with_coupons_register_a_claims_stream(client):
    stock, redis = client.server.app[STOCK], client.server.app[REDIS]
    plain = await make_campaign()
    with_coupons = await make_campaign(coupons=2)
    for campaign in (plain, with_coupons):
        await stock.load_campaign(campaign.id)
    streams = {s.decode() if isinstance(s, bytes) else s for s in await redis.smembers(STREAMS_REGISTRY)}
    assert streams == {CampaignKeys(with_coupons.id).stream}
