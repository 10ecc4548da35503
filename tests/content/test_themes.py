"""Themes: PATCH and DELETE /api/v1/admin/themes/{id} (a theme in use is 409
theme_in_use), and a theme's analytics roll-up over its campaigns (JSON and CSV)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.audit import AuditEntry
from models.campaigns import Campaign, Theme
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import Shopper, make_campaign, shoppers
from tests.stock.fixtures import live_coupon
from tests.wallet.fixtures import REDEEM, grab, qr_payload, staff_login, store

THEMES = "/api/v1/admin/themes"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _admin(client: TestClient, role: str = "operator") -> dict[str, str]:
    return bearer((await logged_in_admin(client, role))["access_token"])


async def _theme(client: TestClient, admin: dict[str, str], name: str = "Women's Day") -> dict[str, Any]:
    resp = await client.post(THEMES, json={"name": name, "description": "March"}, headers=admin)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def test_a_theme_is_renamed_and_audited(client: TestClient) -> None:
    admin = await _admin(client)
    theme = await _theme(client, admin)
    resp = await client.patch(f"{THEMES}/{theme['id']}", json={"name": "Spring"}, headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await resp.json()) | {"created_at": None} == {
        "id": theme["id"],
        "name": "Spring",
        "description": "March",
        "created_at": None,
    }
    resp = await client.patch(f"{THEMES}/{theme['id']}", json={"description": "spring things"}, headers=admin)
    assert (await resp.json())["description"] == "spring things"
    entries = await AuditEntry.filter(entity_type="theme", entity_id=theme["id"]).order_by("id")
    assert [e.action for e in entries] == ["theme.create", "theme.update", "theme.update"]
    assert (entries[1].before, entries[1].after) == ({"name": "Women's Day"}, {"name": "Spring"})


async def test_a_renamed_theme_shows_in_the_feed(client: TestClient) -> None:
    admin = await _admin(client)
    theme = await _theme(client, admin, "Old name")
    await make_campaign(theme_id=theme["id"])
    (me,) = await shoppers(client, 1)
    sections = await (await client.get("/api/v1/feed/sections", headers=me.headers)).json()
    assert [t["name"] for t in sections["themed"]] == ["Old name"]
    resp = await client.patch(f"{THEMES}/{theme['id']}", json={"name": "New name"}, headers=admin)
    assert resp.status == 200
    sections = await (await client.get("/api/v1/feed/sections", headers=me.headers)).json()
    assert [t["name"] for t in sections["themed"]] == ["New name"]


async def test_theme_edits_are_refused_with_their_codes(client: TestClient) -> None:
    admin = await _admin(client)
    first = await _theme(client, admin, "First")
    await _theme(client, admin, "Second")
    await _refused(
        await client.patch(f"{THEMES}/{first['id']}", json={"name": "Second"}, headers=admin), 409, "conflict"
    )
    await _refused(await client.patch(f"{THEMES}/999999", json={"name": "x"}, headers=admin), 404, "not_found")
    await _refused(
        await client.patch(f"{THEMES}/{first['id']}", json={"name": ""}, headers=admin), 422, "validation_failed"
    )
    await _refused(await client.delete(f"{THEMES}/999999", headers=admin), 404, "not_found")
    reviewer = await _admin(client, "reviewer")
    await _refused(
        await client.patch(f"{THEMES}/{first['id']}", json={"name": "x"}, headers=reviewer), 403, "forbidden"
    )
    await _refused(await client.delete(f"{THEMES}/{first['id']}", headers=reviewer), 403, "forbidden")
    assert (await Theme.get(id=first["id"])).name == "First"


async def test_a_theme_in_use_is_not_deleted_an_unused_one_is(client: TestClient) -> None:
    admin = await _admin(client)
    theme = await _theme(client, admin)
    campaign = await make_campaign(theme_id=theme["id"])
    error = await _refused(await client.delete(f"{THEMES}/{theme['id']}", headers=admin), 409, "theme_in_use")
    assert error["details"] == {"campaigns": 1, "campaign_ids": [campaign.id]}
    assert await Theme.exists(id=theme["id"])
    await Campaign.filter(id=campaign.id).update(theme_id=None)
    resp = await client.delete(f"{THEMES}/{theme['id']}", headers=admin)
    assert resp.status == 204, await resp.text()
    assert not await Theme.exists(id=theme["id"])
    entry = await AuditEntry.get(entity_type="theme", entity_id=theme["id"], action="theme.delete")
    assert entry.before == {"name": "Women's Day", "description": "March"}
    await _refused(await client.delete(f"{THEMES}/{theme['id']}", headers=admin), 404, "not_found")


async def _track(client: TestClient, who: Shopper, campaign_id: int) -> None:
    body = {
        "events": [{"type": "impression", "campaign_id": campaign_id}, {"type": "click", "campaign_id": campaign_id}]
    }
    resp = await client.post("/api/v1/track", json=body, headers=who.headers)
    assert resp.status == 202, await resp.text()


async def test_a_themes_roll_up_adds_up_its_campaigns(client: TestClient) -> None:
    admin = await _admin(client)
    theme = await _theme(client, admin)
    flash = await live_coupon(client, stock=10, face_value=1000, campaign={"theme_id": theme["id"]})
    offer = await make_campaign(theme_id=theme["id"])
    outside = await make_campaign()  # another theme's (none): not counted
    a, b, c = await shoppers(client, 3)
    for who in (a, b):
        assert (await client.post(f"/api/v1/campaigns/{offer.id}/join", headers=who.headers)).status == 201
    assert (await client.post(f"/api/v1/campaigns/{outside.id}/join", headers=c.headers)).status == 201
    held = await grab(client, flash, [w.headers for w in (a, b, c)])
    clerk = await staff_login(client, (await store()).id, "anna")
    resp = await client.post(REDEEM, json={"payload": await qr_payload(client, held[0]), "order_amount": 2000},
                             headers=clerk)  # fmt: skip
    assert resp.status == 201, await resp.text()
    for who in (a, b, c):
        await _track(client, who, flash.campaign.id)
    await _track(client, a, offer.id)
    await _track(client, a, outside.id)

    resp = await client.get(f"/api/v1/admin/analytics/themes/{theme['id']}", headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    today = datetime.now(UTC).date()
    assert (body["theme_id"], body["name"], body["date_to"]) == (theme["id"], "Women's Day", today.isoformat())
    assert body["date_from"] == (datetime.now(UTC) - timedelta(hours=1)).date().isoformat()
    rows = {row["campaign_id"]: row for row in body["campaigns"]}
    assert set(rows) == {flash.campaign.id, offer.id}
    f = rows[flash.campaign.id]
    assert (f["reach"], f["impressions"], f["clicks"], f["joined"], f["vouchers_issued"], f["vouchers_redeemed"]) == (
        3, 3, 3, 0, 3, 1,
    )  # fmt: skip
    assert (f["budget_spent"], f["face_value_issued"], f["order_amount"]) == (3000, 3000, 2000)
    o = rows[offer.id]
    assert (o["reach"], o["joined"], o["vouchers_issued"], o["budget_spent"]) == (1, 2, 0, 0)
    totals = body["totals"]
    assert (totals["reach"], totals["impressions"], totals["joined"]) == (4, 4, 2)
    assert (totals["vouchers_issued"], totals["vouchers_redeemed"], totals["budget_spent"]) == (3, 1, 3000)
    assert totals["redemption_rate"] == round(1 / 3, 4)

    export = await client.get(f"/api/v1/admin/analytics/themes/{theme['id']}.csv", headers=admin)
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(await export.text())))
    assert [r["campaign_id"] for r in table] == [str(flash.campaign.id), str(offer.id), ""]
    assert (table[-1]["campaign_title"], table[-1]["joined"], table[-1]["budget_spent"]) == ("total", "2", "3000")


async def test_an_empty_or_unknown_theme(client: TestClient) -> None:
    admin = await _admin(client)
    theme = await _theme(client, admin)
    body = await (await client.get(f"/api/v1/admin/analytics/themes/{theme['id']}", headers=admin)).json()
    assert body["campaigns"] == [] and body["totals"]["reach"] == 0 and body["totals"]["budget_spent"] == 0
    await _refused(await client.get("/api/v1/admin/analytics/themes/999999", headers=admin), 404, "not_found")
    await _refused(await client.get("/api/v1/admin/analytics/themes/999999.csv", headers=admin), 404, "not_found")
    bad = await client.get(
        f"/api/v1/admin/analytics/themes/{theme['id']}", params={"date_from": "2026-02-01", "date_to": "2026-01-01"},
        headers=admin,
    )  # fmt: skip
    await _refused(bad, 422, "validation_failed")
