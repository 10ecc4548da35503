"""The feed's ``joinable`` agrees with the campaign page: a capped campaign filled to its
cap through real joins is shown not joinable, as its page refuses ``campaign_full``
(issue 14 item 2); a flash sale whose budget is spent through real grabs likewise,
as its page and a join refuse `budget_exhausted`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.campaigns import CouponTemplate
from tests.journey.fixtures import make_campaign, shoppers


async def _item(client, who, campaign_id: int) -> dict:
    resp = await client.get("/api/v1/feed", headers={**who.headers, "Accept-Language": "en"})
    assert resp.status == 200, await resp.text()
    return next(i for i in (await resp.json())["items"] if i["id"] == campaign_id)


async def _section_items(client, who, campaign_id: int) -> list[dict]:
    resp = await client.get("/api/v1/feed/sections", headers={**who.headers, "Accept-Language": "en"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    found = [i for k in ("recommended", "ending_soon", "near_you") for i in body[k]]
    found += [i for t in body["themed"] for i in t["items"]]
    return [i for i in found if i["id"] == campaign_id]


async def test_a_full_campaign_is_not_joinable_in_the_feed_as_on_its_page(client):
    event = await make_campaign(type="event", participant_cap=2, ends_at=datetime.now(UTC) + timedelta(hours=5))
    roomy = await make_campaign(type="event", participant_cap=5)  # never joined: no seat set in Redis
    *joiners, late = await shoppers(client, 3, prefix="o_full")
    before = await _item(client, late, event.id)
    assert before["joinable"] is True
    for p in joiners:
        resp = await client.post(f"/api/v1/campaigns/{event.id}/join", headers=p.headers)
        assert resp.status == 201, await resp.text()

    page = await (await client.get(f"/api/v1/campaigns/{event.id}", headers=late.headers)).json()
    assert page["can_join"] is False and page["join_refusal"]["code"] == "campaign_full"
    item = await _item(client, late, event.id)
    assert item["joinable"] is False and item["participants"] == 2
    assert item["reasons"][-1]["code"] == "full" and item["reasons"][-1]["points"] == 0
    shown = await _section_items(client, late, event.id)
    assert shown and all(i["joinable"] is False for i in shown)
    resp = await client.post(f"/api/v1/campaigns/{event.id}/join", headers=late.headers)
    assert resp.status == 409
    # Below its cap (counted from the database while Redis has no seat set), joinable.
    assert (await _item(client, late, roomy.id))["joinable"] is True


async def test_a_flash_sale_with_its_budget_spent_is_not_joinable_anywhere(client):
    # One coupon whose face value is the whole budget: one grab spends it.
    sale = await make_campaign(type="flash_sale", budget_limit=500, coupons=1, coupon={"face_value": 500})
    grabber, late = await shoppers(client, 2, prefix="o_spent")
    assert (await _item(client, late, sale.id))["joinable"] is True
    template = await CouponTemplate.get(campaign_id=sale.id)
    resp = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=grabber.headers)
    assert resp.status in (200, 201), await resp.text()

    page = await (await client.get(f"/api/v1/campaigns/{sale.id}", headers=late.headers)).json()
    assert page["can_join"] is False and page["join_refusal"]["code"] == "budget_exhausted"
    resp = await client.post(f"/api/v1/campaigns/{sale.id}/join", headers=late.headers)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "budget_exhausted"
    item = await _item(client, late, sale.id)
    assert item["joinable"] is False
    assert item["reasons"][-1]["code"] == "budget_spent" and item["reasons"][-1]["points"] == 0
    shown = await _section_items(client, late, sale.id)
    assert shown and all(i["joinable"] is False for i in shown)
