"""GET /api/v1/admin/campaigns/{id}/preview: a customer's view of any campaign, drafts
included: the page and feed card as the customer routes shape them, and whether the
customer may join and why not."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.campaigns.fixtures import campaign_body
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import make_campaign, shoppers

BASE = "/api/v1/admin/campaigns"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _admin(client: TestClient, role: str = "operator") -> dict[str, str]:
    return bearer((await logged_in_admin(client, role))["access_token"])


async def _preview(client: TestClient, admin: dict[str, str], campaign_id: int, **params: Any) -> dict[str, Any]:
    resp = await client.get(f"{BASE}/{campaign_id}/preview", params={k: str(v) for k, v in params.items()},
                            headers=admin)  # fmt: skip
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _without_clock(page: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in page.items() if k != "server_time"}


async def test_a_draft_is_previewed_as_it_will_be_published(client: TestClient) -> None:
    admin = await _admin(client)
    resp = await client.post(BASE, json=campaign_body(), headers=admin)
    assert resp.status == 201, await resp.text()
    draft = await resp.json()
    (me,) = await shoppers(client, 1)
    # Customers cannot see it yet.
    assert (await client.get(f"/api/v1/campaigns/{draft['id']}", headers=me.headers)).status == 404
    body = await _preview(client, admin, draft["id"], customer_id=me.id, lang="en")
    assert (body["campaign_id"], body["customer_id"], body["status"], body["as_published"]) == (
        draft["id"], me.id, "draft", True,
    )  # fmt: skip
    page = body["page"]
    assert (page["phase"], page["language"], page["title"]) == ("teaser", "en", "Double 12 deals")
    assert page["rewards"]["coupons"][0]["title"] == "10 yuan off"
    assert body["eligibility"] == {
        "visible_now": False, "in_audience": True, "can_join": False, "reason": "teaser",
        "refusal": page["join_refusal"],
    }  # fmt: skip
    assert page["join_refusal"]["code"] == "campaign_not_active"
    card = body["card"]
    assert (card["id"], card["phase"], card["teaser"], card["joinable"], card["title"]) == (
        draft["id"], "teaser", True, False, "Double 12 deals",
    )  # fmt: skip
    assert [r["code"] for r in card["reasons"]] == ["teaser"]
    chinese = await _preview(client, admin, draft["id"], customer_id=me.id)
    assert (chinese["page"]["language"], chinese["page"]["title"]) == ("zh-CN", "双十二优惠")


async def test_a_live_campaign_previews_exactly_what_the_customer_gets(client: TestClient) -> None:
    admin = await _admin(client)
    campaign = await make_campaign(coupons=1, tags=["coffee"])
    (me,) = await shoppers(client, 1, interest_tags=["coffee"])
    body = await _preview(client, admin, campaign.id, customer_id=me.id, lang="en")
    assert (body["status"], body["as_published"]) == ("active", False)
    assert body["eligibility"] == {
        "visible_now": True,
        "in_audience": True,
        "can_join": True,
        "reason": None,
        "refusal": None,
    }
    headers = {**me.headers, "Accept-Language": "en"}
    page = await (await client.get(f"/api/v1/campaigns/{campaign.id}", headers=headers)).json()
    assert _without_clock(body["page"]) == _without_clock(page)
    feed = await (await client.get("/api/v1/feed", headers=headers)).json()
    (card,) = [c for c in feed["items"] if c["id"] == campaign.id]
    assert body["card"] == card
    assert "interest" in [r["code"] for r in card["reasons"]]
    # After joining, the preview says so as the page does.
    assert (await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)).status == 201
    joined = await _preview(client, admin, campaign.id, customer_id=me.id)
    assert (joined["eligibility"]["can_join"], joined["eligibility"]["reason"]) == (False, "joined")
    assert joined["page"]["participation"]["campaign_id"] == campaign.id
    assert joined["card"]["joined"] is True


async def test_a_targeted_campaign_shows_who_is_out_of_its_audience(client: TestClient) -> None:
    admin = await _admin(client)
    campaign = await make_campaign(visibility="targeted", audience_rule={"tier": ["gold"]})
    (gold,) = await shoppers(client, 1, prefix="o_gold", membership_tier="gold")
    (plain,) = await shoppers(client, 1, prefix="o_plain")
    inside = await _preview(client, admin, campaign.id, customer_id=gold.id)
    assert inside["eligibility"]["in_audience"] is True and inside["eligibility"]["can_join"] is True
    assert inside["card"]["id"] == campaign.id
    outside = await _preview(client, admin, campaign.id, customer_id=plain.id)
    assert outside["eligibility"] == {
        "visible_now": False, "in_audience": False, "can_join": False, "reason": "audience",
        "refusal": outside["page"]["join_refusal"],
    }  # fmt: skip
    assert outside["page"]["join_refusal"]["code"] == "not_eligible"
    assert outside["card"] is None  # the feed leaves it out for them


async def test_a_hidden_campaign_has_a_page_but_no_card(client: TestClient) -> None:
    admin = await _admin(client)
    campaign = await make_campaign(visibility="hidden")
    (me,) = await shoppers(client, 1)
    body = await _preview(client, admin, campaign.id, customer_id=me.id)
    assert body["page"]["id"] == campaign.id and body["card"] is None


async def test_preview_refusals(client: TestClient) -> None:
    admin = await _admin(client)
    campaign = await make_campaign()
    (me,) = await shoppers(client, 1)
    for params, status, code in (({"customer_id": me.id}, 404, "not_found"),):
        resp = await client.get(f"{BASE}/999999/preview", params=params, headers=admin)
        assert resp.status == status and (await error_of(resp))["code"] == code
    resp = await client.get(f"{BASE}/{campaign.id}/preview", params={"customer_id": 999999}, headers=admin)
    assert resp.status == 422 and (await error_of(resp))["code"] == "unknown_customer"
    for params in ({}, {"customer_id": "x"}, {"customer_id": "0"}):
        resp = await client.get(f"{BASE}/{campaign.id}/preview", params=params, headers=admin)
        assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed", params
    resp = await client.get(f"{BASE}/{campaign.id}/preview", params={"customer_id": me.id}, headers=me.headers)
    assert resp.status == 403
    reviewer = await _admin(client, "reviewer")
    assert (
        await client.get(f"{BASE}/{campaign.id}/preview", params={"customer_id": me.id}, headers=reviewer)
    ).status == 200
