"""A campaign's page for a customer: language, visibility, join status, stock, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.campaigns import CouponTemplate
from server.keys import STOCK
from tests.helpers import error_of
from tests.journey.fixtures import challenge, make_campaign, pos, purchase, shoppers


def _page(campaign_id: int) -> str:
    return f"/api/v1/campaigns/{campaign_id}"


async def test_content_follows_accept_language_with_fallbacks(client):
    campaign = await make_campaign()
    english_default = await make_campaign(
        default_language="en", content={"en": {"title": "Hello"}, "ja": {"title": "こんにちは"}}
    )
    [me] = await shoppers(client, 1)

    async def title(campaign_id: int, header: str | None) -> tuple[str, str]:
        headers = dict(me.headers)
        if header is not None:
            headers["Accept-Language"] = header
        body = await (await client.get(_page(campaign_id), headers=headers)).json()
        return body["language"], body["title"]

    assert await title(campaign.id, "en-US,en;q=0.9") == ("en", "Deals")
    assert await title(campaign.id, "fr-FR, en;q=0.5") == ("en", "Deals")
    assert await title(campaign.id, "fr") == ("zh-CN", "优惠")
    assert await title(campaign.id, None) == ("zh-CN", "优惠")
    assert await title(campaign.id, "zh;q=0.8, en;q=0.9") == ("en", "Deals")
    assert await title(campaign.id, "en;q=0, zh-TW") == ("zh-CN", "优惠")
    assert await title(english_default.id, "zh-CN") == ("en", "Hello")
    assert await title(english_default.id, "ja-JP") == ("ja", "こんにちは")
    assert await title(campaign.id, "garbage;;;q=x,,") == ("zh-CN", "优惠")


async def test_visibility_teasers_and_targeting(client):
    now = datetime.now(UTC)
    [me] = await shoppers(client, 1)
    [gold] = await shoppers(client, 1, prefix="o_gold", membership_tier="gold")
    hidden = await make_campaign(visibility="hidden")
    teaser = await make_campaign(
        status="scheduled", visible_from=now - timedelta(hours=1), starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=2),
    )  # fmt: skip
    not_yet = await make_campaign(
        status="scheduled", visible_from=now + timedelta(hours=1), starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=2),
    )  # fmt: skip
    draft = await make_campaign(status="draft")
    targeted = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    targeted_teaser = await make_campaign(
        visibility="targeted", audience_rule={"tier": "gold"}, status="scheduled",
        visible_from=now - timedelta(hours=1), starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2),
    )  # fmt: skip

    resp = await client.get(_page(hidden.id), headers=me.headers)
    assert resp.status == 200 and (await resp.json())["can_join"] is True  # reachable by link / QR code
    body = await (await client.get(_page(teaser.id), headers=me.headers)).json()
    assert body["phase"] == "teaser" and body["can_join"] is False
    assert body["join_refusal"]["code"] == "campaign_not_active" and body["join_refusal"]["reason"] == "teaser"
    for campaign in (not_yet, draft):
        resp = await client.get(_page(campaign.id), headers=me.headers)
        assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    resp = await client.get(_page(targeted.id), headers=me.headers)
    assert resp.status == 403
    error = await error_of(resp)
    assert error["code"] == "not_eligible" and error["details"]["reason"] == "audience"
    resp = await client.get(_page(targeted.id), headers=gold.headers)
    assert resp.status == 200 and (await resp.json())["can_join"] is True
    assert (await client.get(_page(targeted_teaser.id), headers=me.headers)).status == 403
    resp = await client.get(_page(targeted_teaser.id), headers=gold.headers)
    assert resp.status == 200 and (await resp.json())["phase"] == "teaser"
    assert (await client.get("/api/v1/campaigns/x1", headers=me.headers)).status == 404
    assert (await client.get(_page(hidden.id))).status == 401


async def test_join_status_capacity_and_progress(client):
    full = await make_campaign(type="event", participant_cap=1)
    a, b = await shoppers(client, 2)
    assert (await client.post(f"/api/v1/campaigns/{full.id}/join", headers=a.headers)).status == 201
    mine = await (await client.get(_page(full.id), headers=a.headers)).json()
    assert mine["can_join"] is False and mine["join_refusal"]["code"] == "already_joined"
    assert mine["participation"]["status"] == "joined" and mine["participants"] == 1
    theirs = await (await client.get(_page(full.id), headers=b.headers)).json()
    assert theirs["can_join"] is False and theirs["join_refusal"]["code"] == "campaign_full"
    assert theirs["participation"] is None

    goal = await challenge("spend", 10_000, reward_points=20, reward_badge="spender")
    await client.post(f"/api/v1/campaigns/{goal.id}/join", headers=a.headers)
    await (await pos(client)).post(purchase("p1", a, 2_500))
    page = await (await client.get(_page(goal.id), headers=a.headers)).json()
    assert page["goal"] == {"metric": "spend", "target": 10_000, "window_days": None}
    assert page["rewards"]["granted_on"] == "completion" and page["rewards"]["points"] == 20
    progress = page["participation"]
    assert (progress["value"], progress["percent"], progress["remaining"]) == (2_500, 25, 7_500)


async def test_rewards_show_stock_left_from_redis_or_the_database(client):
    campaign = await make_campaign(type="flash_sale", coupons=2, coupon={"total_stock": 7})
    [me] = await shoppers(client, 1)
    body = await (await client.get(_page(campaign.id), headers={**me.headers, "Accept-Language": "en"})).json()
    coupons = body["rewards"]["coupons"]
    assert [c["stock_left"] for c in coupons] == [7, 7]  # not loaded: from the database
    assert coupons[0]["title"] == "Coupon 0" and coupons[0]["how"] == "grab"
    await client.server.app[STOCK].load_campaign(campaign.id)
    first = (await CouponTemplate.filter(campaign_id=campaign.id).order_by("id").first()).id
    assert (await client.post(f"/api/v1/coupons/{first}/grab", headers=me.headers)).status == 201
    body = await (await client.get(_page(campaign.id), headers=me.headers)).json()
    assert [c["stock_left"] for c in body["rewards"]["coupons"]] == [6, 7]


async def test_bad_query_input_on_journey_lists_is_a_422(client):
    [me] = await shoppers(client, 1)
    for path in (
        "/api/v1/me/points?limit=0",
        "/api/v1/me/points?limit=101",
        "/api/v1/me/points?cursor=garbage",
        "/api/v1/me/campaigns?cursor=garbage",
        "/api/v1/me/campaigns?unknown=1",
    ):
        resp = await client.get(path, headers=me.headers)
        assert resp.status == 422, path
        assert (await error_of(resp))["code"] == "validation_failed"
    empty = await (await client.get("/api/v1/me/points", headers=me.headers)).json()
    assert empty == {"balance": 0, "items": [], "next_cursor": None}
