"""Customer routes carry the URL of every image they name (campaign page, feed card,
badges), and the URL serves the image; badges have a name and an icon per language."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.settings import Settings
from tests.content.test_media import image_bytes, upload
from tests.helpers import bearer, cheap_password_hashing, logged_in_admin
from tests.journey.fixtures import make_campaign, shoppers


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, media_root=tmp_path / "media")


async def uploaded(
    client: TestClient, *colours: tuple[int, int, int], operator: dict[str, str] | None = None
) -> list[tuple[int, str, bytes]]:
    """(id, url, bytes) of one uploaded PNG per colour."""
    operator = operator or bearer((await logged_in_admin(client, "operator"))["access_token"])
    out = []
    for i, _ in enumerate(colours):
        data = image_bytes("PNG", (40 + i, 30))
        resp = await upload(client, operator, data)
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        out.append((body["id"], body["url"], data))
    return out


async def fetched(client: TestClient, url: str) -> bytes:
    resp = await client.get(url)
    assert resp.status == 200, url
    return await resp.read()


async def illustrated(client: TestClient) -> tuple[Any, dict[str, tuple[int, str, bytes]]]:
    banner, poster, icon_zh, icon_en = await uploaded(client, (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0))
    campaign = await make_campaign(
        banner_media_id=banner[0], poster_media_id=poster[0], reward_badge="early_bird",
        content={
            "zh-CN": {"title": "优惠", "summary": "全场", "badge_name": "早起鸟", "badge_icon_media_id": icon_zh[0]},
            "en": {"title": "Deals", "summary": "All", "badge_name": "Early bird", "badge_icon_media_id": icon_en[0]},
        },
    )  # fmt: skip
    return campaign, {"banner": banner, "poster": poster, "zh": icon_zh, "en": icon_en}


async def test_the_campaign_page_carries_fetchable_image_urls(client: TestClient) -> None:
    campaign, images = await illustrated(client)
    (me,) = await shoppers(client, 1)
    page = await (await client.get(f"/api/v1/campaigns/{campaign.id}", headers=me.headers)).json()
    assert page["banner_media_id"] == images["banner"][0]
    assert page["banner_url"] == images["banner"][1]
    assert page["poster_url"] == images["poster"][1]
    assert await fetched(client, page["banner_url"]) == images["banner"][2]
    assert await fetched(client, page["poster_url"]) == images["poster"][2]
    rewards = page["rewards"]
    assert (rewards["badge"], rewards["badge_name"]) == ("early_bird", "早起鸟")
    assert rewards["badge_icon_url"] == images["zh"][1]
    english = await (
        await client.get(f"/api/v1/campaigns/{campaign.id}", headers={**me.headers, "Accept-Language": "en-GB"})
    ).json()
    badge = english["rewards"]
    assert (badge["badge_name"], badge["badge_icon_media_id"]) == ("Early bird", images["en"][0])
    assert await fetched(client, english["rewards"]["badge_icon_url"]) == images["en"][2]


async def test_a_campaign_without_images_has_null_urls(client: TestClient) -> None:
    campaign = await make_campaign()
    (me,) = await shoppers(client, 1)
    page = await (await client.get(f"/api/v1/campaigns/{campaign.id}", headers=me.headers)).json()
    assert (page["banner_url"], page["poster_url"], page["rewards"]["badge_icon_url"]) == (None, None, None)
    feed = await (await client.get("/api/v1/feed", headers=me.headers)).json()
    assert [item["banner_url"] for item in feed["items"]] == [None]


async def test_feed_cards_carry_the_banner_url(client: TestClient) -> None:
    campaign, images = await illustrated(client)
    (me,) = await shoppers(client, 1)
    feed = await (await client.get("/api/v1/feed", headers=me.headers)).json()
    (card,) = [item for item in feed["items"] if item["id"] == campaign.id]
    assert (card["banner_media_id"], card["banner_url"]) == (images["banner"][0], images["banner"][1])
    assert await fetched(client, card["banner_url"]) == images["banner"][2]
    sections = await (await client.get("/api/v1/feed/sections", headers=me.headers)).json()
    (card,) = [item for item in sections["recommended"] if item["id"] == campaign.id]
    assert card["banner_url"] == images["banner"][1]


async def test_badges_have_a_name_and_icon_in_the_callers_language(client: TestClient) -> None:
    campaign, images = await illustrated(client)
    (me,) = await shoppers(client, 1)
    joined = await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)
    assert joined.status == 201, await joined.text()
    zh = (await (await client.get("/api/v1/me/badges", headers=me.headers)).json())["items"]
    assert [(b["badge"], b["campaign_id"], b["language"], b["name"]) for b in zh] == [
        ("early_bird", campaign.id, "zh-CN", "早起鸟")
    ]
    assert zh[0]["icon_media_id"] == images["zh"][0]
    assert await fetched(client, zh[0]["icon_url"]) == images["zh"][2]
    en = (await (await client.get("/api/v1/me/badges", headers={**me.headers, "Accept-Language": "en"})).json())[
        "items"
    ]
    assert (en[0]["language"], en[0]["name"], en[0]["icon_url"]) == ("en", "Early bird", images["en"][1])
    assert await fetched(client, en[0]["icon_url"]) == images["en"][2]


async def test_a_badge_without_display_texts_shows_its_key(client: TestClient) -> None:
    campaign = await make_campaign(reward_badge="plain")
    (me,) = await shoppers(client, 1)
    assert (await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)).status == 201
    (badge,) = (await (await client.get("/api/v1/me/badges", headers=me.headers)).json())["items"]
    assert (badge["name"], badge["icon_media_id"], badge["icon_url"]) == ("plain", None, None)


async def test_an_unknown_badge_icon_is_refused_by_the_builder(client: TestClient) -> None:
    from tests.campaigns.fixtures import campaign_body

    operator = bearer((await logged_in_admin(client, "operator"))["access_token"])
    body = campaign_body(reward_badge="b")
    body["content"]["en"]["badge_icon_media_id"] = 999_999
    resp = await client.post("/api/v1/admin/campaigns", json=body, headers=operator)
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["details"]["errors"][0]["field"] == "content.en.badge_icon_media_id"
    (icon,) = await uploaded(client, (0, 0, 0), operator=operator)
    body["content"]["en"]["badge_icon_media_id"] = icon[0]
    created = await client.post("/api/v1/admin/campaigns", json=body, headers=operator)
    assert created.status == 201, await created.text()
    assert (await created.json())["content"]["en"]["badge_icon_media_id"] == icon[0]
