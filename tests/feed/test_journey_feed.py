"""The discovery feed: who sees what, in which order and why; sections; tracking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from models.campaigns import Campaign, CampaignStore, Theme
from models.stores import Store
from server.keys import FEED, JOURNEY, REDIS
from services.analytics import tracking
from tests.helpers import error_of
from tests.journey.fixtures import make_campaign, shoppers
from tests.journey.fixtures import make_campaign as make_running


async def _feed(client, who, query: str = "", language: str = "en") -> list[dict]:
    resp = await client.get(f"/api/v1/feed{query}", headers={**who.headers, "Accept-Language": language})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def _world():
    now = datetime.now(UTC)

    async def make_campaign(**fields):  # running for ten more days unless told otherwise
        return await make_running(**{"ends_at": now + timedelta(days=10), **fields})

    shanghai = await Store.create(code="SH", name="Shanghai", city="Shanghai", latitude=31.23, longitude=121.47)
    beijing = await Store.create(code="BJ", name="Beijing", city="Beijing", latitude=39.90, longitude=116.40)
    spring = await Theme.create(name="Spring")
    c = {
        "gold": await make_campaign(visibility="targeted", audience_rule={"tier": ["gold", "platinum"]}, tags=["vip"]),
        "coffee": await make_campaign(tags=["coffee"], theme_id=spring.id),
        "tea": await make_campaign(tags=["tea"], theme_id=spring.id),
        "ending": await make_campaign(tags=["misc"], ends_at=now + timedelta(hours=5)),
        "beijing": await make_campaign(tags=["misc"], all_stores=False),
        "teaser": await make_campaign(
            status="scheduled",
            visible_from=now - timedelta(hours=1),
            starts_at=now + timedelta(days=2),
            ends_at=now + timedelta(days=9),
        ),
        "hidden": await make_campaign(visibility="hidden"),
        "pos_only": await make_campaign(channels=["pos"]),
        "paused": await make_campaign(status="paused"),
        "draft": await make_campaign(status="draft"),
    }
    await CampaignStore.create(campaign=c["beijing"], store=beijing)
    return c, shanghai, beijing, spring


@pytest.mark.both_redis
async def test_different_customers_get_different_explainable_orders(client):
    c, _, beijing, _ = await _world()
    [gold] = await shoppers(client, 1, prefix="o_gold", membership_tier="gold", interest_tags=["coffee"])
    [plain] = await shoppers(
        client, 1, prefix="o_plain", interest_tags=["tea"], preferred_store_id=beijing.id, city="Beijing"
    )
    never = {c[k].id for k in ("hidden", "pos_only", "paused", "draft")}

    mine = await _feed(client, gold)
    ids = [i["id"] for i in mine]
    assert ids[0] == c["gold"].id
    assert mine[0]["reason"] == "for Gold members" and mine[0]["reasons"][0]["code"] == "audience"
    assert ids.index(c["coffee"].id) < ids.index(c["tea"].id)
    coffee = mine[ids.index(c["coffee"].id)]
    assert coffee["reason"] == "because you like coffee"
    assert not never & set(ids)
    teaser = mine[ids.index(c["teaser"].id)]
    assert teaser["teaser"] is True and teaser["joinable"] is False and teaser["phase"] == "teaser"
    assert teaser["reasons"][-1]["code"] == "teaser" and teaser["reasons"][-1]["text"] == "starts in 2 days"
    ending = mine[ids.index(c["ending"].id)]
    assert ending["reason"] == "ends in 5 hours"

    theirs = await _feed(client, plain)
    their_ids = [i["id"] for i in theirs]
    assert c["gold"].id not in their_ids and not never & set(their_ids)
    assert their_ids.index(c["tea"].id) < their_ids.index(c["coffee"].id)
    assert their_ids != ids
    beijing_item = theirs[their_ids.index(c["beijing"].id)]
    assert "at your store" in [r["text"] for r in beijing_item["reasons"]]
    # Scores are the sums of the reasons shown (popularity below half its weight is not shown).
    for item in theirs:
        assert item["score"] >= sum(r["points"] for r in item["reasons"]) - 1e-6

    # Chinese texts for a Chinese client.
    zh = await _feed(client, gold, language="zh-CN,zh;q=0.9")
    assert zh[0]["reason"] == "金卡会员专享" and zh[0]["language"] == "zh-CN"


async def test_location_store_filter_and_paging(client):
    c, shanghai, _, _ = await _world()
    [me] = await shoppers(client, 1)
    near_beijing = await _feed(client, me, "?lat=39.91&lng=116.41")
    by_id = {i["id"]: i for i in near_beijing}
    assert by_id[c["beijing"].id]["distance_km"] < 2
    assert any(r["code"] == "distance" for r in by_id[c["beijing"].id]["reasons"])
    near_shanghai = {i["id"]: i for i in await _feed(client, me, "?lat=31.2&lng=121.5")}
    assert near_shanghai[c["beijing"].id]["distance_km"] > 1000
    assert not any(r["code"] == "distance" for r in near_shanghai[c["beijing"].id]["reasons"])
    at_shanghai = {i["id"] for i in await _feed(client, me, f"?store_id={shanghai.id}")}
    assert c["beijing"].id not in at_shanghai and c["coffee"].id in at_shanghai

    everything = [i["id"] for i in await _feed(client, me, "?limit=50")]
    pages: list[int] = []
    cursor = ""
    while True:
        resp = await client.get(f"/api/v1/feed?limit=2{cursor}", headers=me.headers)
        body = await resp.json()
        pages += [i["id"] for i in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert pages == everything

    for query, code in (
        ("?lat=31.2", "validation_failed"),
        ("?limit=0", "validation_failed"),
        ("?limit=51", "validation_failed"),
        ("?cursor=garbage", "validation_failed"),
        ("?lat=91&lng=0", "validation_failed"),
        ("?nope=1", "validation_failed"),
        ("?store_id=999999", "unknown_store"),
    ):
        resp = await client.get(f"/api/v1/feed{query}", headers=me.headers)
        assert resp.status == 422, query
        assert (await error_of(resp))["code"] == code, query


async def test_joined_campaigns_move_down_and_are_not_joinable(client):
    c, *_ = await _world()
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    before = await _feed(client, me)
    assert before[0]["id"] == c["coffee"].id
    assert (await client.post(f"/api/v1/campaigns/{c['coffee'].id}/join", headers=me.headers)).status == 201
    client.server.app[FEED].forget()
    after = await _feed(client, me)
    item = next(i for i in after if i["id"] == c["coffee"].id)
    assert item["joined"] is True and item["joinable"] is False and after[0]["id"] != c["coffee"].id
    assert item["participants"] == 1


async def test_admin_changes_show_at_once_and_audiences_refresh(client):
    c, *_ = await _world()
    [me] = await shoppers(client, 1)
    assert c["gold"].id not in [i["id"] for i in await _feed(client, me)]
    # Becoming gold shows the targeted campaign once its audience set is rebuilt (TTL),
    # or at once after an admin change.
    from models.customers import Customer

    await Customer.filter(id=me.id).update(membership_tier="gold")
    journey = client.server.app[JOURNEY]
    await journey.campaign_changed(c["gold"].id)
    assert c["gold"].id in [i["id"] for i in await _feed(client, me)]
    await Campaign.filter(id=c["coffee"].id).update(content={"en": {"title": "Renamed"}}, default_language="en")
    await journey.campaign_changed(c["coffee"].id)
    titles = {i["id"]: i["title"] for i in await _feed(client, me)}
    assert titles[c["coffee"].id] == "Renamed"


async def test_a_feed_request_costs_the_same_queries_for_3_or_30_campaigns(client):
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    db = connections.get("default")
    counted = {"n": 0}
    cls = type(db)
    original, original_dict = cls.execute_query, cls.execute_query_dict

    async def execute_query(self, *args, **kwargs):
        counted["n"] += 1
        return await original(self, *args, **kwargs)

    async def execute_query_dict(self, *args, **kwargs):
        counted["n"] += 1
        return await original_dict(self, *args, **kwargs)

    async def queries_for_one_request() -> int:
        await _feed(client, me)  # warms the per-process index
        counted["n"] = 0
        cls.execute_query, cls.execute_query_dict = execute_query, execute_query_dict
        try:
            await _feed(client, me)
        finally:
            cls.execute_query, cls.execute_query_dict = original, original_dict
        return counted["n"]

    for _ in range(3):
        await make_campaign(tags=["coffee"])
    few = await queries_for_one_request()
    for _ in range(27):
        await make_campaign(tags=["tea"])
    client.server.app[FEED].forget()
    many = await queries_for_one_request()
    assert few == many <= 4


async def test_sections(client):
    c, _, _, spring = await _world()
    [gold] = await shoppers(client, 1, prefix="o_gold", membership_tier="gold", interest_tags=["coffee"])
    resp = await client.get("/api/v1/feed/sections?lat=39.91&lng=116.41&limit=3", headers=gold.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["recommended"][0]["id"] == c["gold"].id and len(body["recommended"]) == 3
    assert [i["id"] for i in body["ending_soon"]] == [c["ending"].id]
    wide = await (await client.get("/api/v1/feed/sections?lat=39.91&lng=116.41&limit=20", headers=gold.headers)).json()
    assert c["beijing"].id in [i["id"] for i in wide["near_you"]]
    assert all(i["distance_km"] <= 5 for i in wide["near_you"])
    far = await (await client.get("/api/v1/feed/sections?lat=0&lng=0", headers=gold.headers)).json()
    assert far["near_you"] == []
    assert [(t["theme_id"], t["name"]) for t in body["themed"]] == [(spring.id, "Spring")]
    assert [i["id"] for i in body["themed"][0]["items"]] == [c["coffee"].id, c["tea"].id]
    no_location = await (await client.get("/api/v1/feed/sections", headers=gold.headers)).json()
    assert no_location["near_you"] == []
    assert (await client.get("/api/v1/feed/sections?limit=0", headers=gold.headers)).status == 422


@pytest.mark.both_redis
async def test_impressions_and_clicks_are_counted(client):
    c, *_ = await _world()
    a, b = await shoppers(client, 2)
    events = [
        {"type": "impression", "campaign_id": c["coffee"].id, "section": "recommended"},
        {"type": "impression", "campaign_id": c["coffee"].id},
        {"type": "click", "campaign_id": c["coffee"].id, "section": "recommended"},
        {"type": "impression", "campaign_id": 999_999},
    ]
    resp = await client.post("/api/v1/track", json={"events": events}, headers=a.headers)
    assert resp.status == 202 and await resp.json() == {"accepted": 3, "ignored": 1}
    resp = await client.post("/api/v1/track", json={"events": events[:1]}, headers=b.headers)
    assert resp.status == 202
    stats = await tracking.daily(client.server.app[REDIS], c["coffee"].id, datetime.now(UTC).date())
    assert (stats["impressions"], stats["clicks"], stats["reach"], stats["clickers"]) == (3, 1, 2, 1)
    assert stats["ctr"] == round(1 / 3, 4)
    assert stats["sections"] == {"impressions:recommended": 2, "clicks:recommended": 1}
    for bad in (
        {"events": []},
        {"events": events[:1] * 101},
        {"events": [{"type": "view", "campaign_id": 1}]},
        {"events": [{"type": "click", "campaign_id": 0}]},
        {"events": [{"type": "click", "campaign_id": 1, "section": "Bad Section"}]},
        {},
    ):
        resp = await client.post("/api/v1/track", json=bad, headers=a.headers)
        assert resp.status == 422, bad
    assert (await client.post("/api/v1/track", json={"events": events})).status == 401
