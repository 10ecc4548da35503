"""Builders for the attribution, ROI and drill-down tests (tests/analytics/test_roi.py,
the console's analytics page): a store, a redeemed voucher, a join and POS purchases."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from models.campaigns import CampaignLabel, Theme
from models.customers import Customer
from tests.journey.fixtures import Pos, Shopper, make_campaign, pos, purchase, shoppers
from tests.stock.fixtures import LiveCoupon, live_coupon
from tests.wallet.fixtures import REDEEM, grab, qr_payload, staff_login, store


async def post_event(integration: Pos, body: dict[str, Any]) -> dict[str, Any]:
    resp = await integration.post(body)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def join(client: TestClient, campaign_id: int, who: Shopper) -> None:
    resp = await client.post(f"/api/v1/campaigns/{campaign_id}/join", headers=who.headers)
    assert resp.status == 201, await resp.text()


class Shop:
    """A store selling a live fixed coupon (1,000 fen off), a campaign joined by one
    customer, and a POS posting purchases."""

    def __init__(self, live: LiveCoupon, window_campaign_id: int, store_id: int, a: Shopper, b: Shopper, c: Shopper):
        self.live, self.window_campaign_id, self.store_id = live, window_campaign_id, store_id
        self.a, self.b, self.c = a, b, c


async def shop_with_sales(client: TestClient) -> tuple[Shop, Pos]:
    """A redeems a voucher of the live coupon on order ORD-1 (5,000 fen) and the POS posts
    that order; B joined the second campaign and buys ORD-2 (3,000 fen); C joined nothing
    and buys ORD-3 (900 fen)."""
    theme = await Theme.create(name="Women's Day")
    live = await live_coupon(client, stock=10, face_value=1000, campaign={"theme_id": theme.id})
    await CampaignLabel.create(campaign_id=live.campaign.id, kind="channel", value="miniprogram")
    other = await make_campaign()
    a, b, c = await shoppers(client, 3, prefix="o_roi")
    await Customer.filter(id=a.id).update(membership_tier="gold")
    [held] = await grab(client, live, [a.headers])
    shop = await store()
    clerk = await staff_login(client, shop.id, "anna")
    body = {"payload": await qr_payload(client, held), "order_ref": "ORD-1", "order_amount": 5000}
    resp = await client.post(REDEEM, json=body, headers=clerk)
    assert resp.status == 201, await resp.text()
    await join(client, other.id, b)
    integration = await pos(client)
    await post_event(integration, purchase("e1", a, 5000, order_ref="ORD-1", store_id=shop.id))
    await post_event(integration, purchase("e2", b, 3000, order_ref="ORD-2", store_id=shop.id))
    await post_event(integration, purchase("e3", c, 900, order_ref="ORD-3", store_id=shop.id))
    return Shop(live, other.id, shop.id, a, b, c), integration
