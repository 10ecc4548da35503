"""The admin read routes the console's campaign page shows a social form's live state
from: a group buy's groups, a bargain campaign's bargains, a lucky draw's draws. Rows are
written straight to the database (what the forms' workers write); the routes page them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.bargains import Bargain
from models.campaigns import Campaign
from models.customers import Customer
from models.draws import LuckyDraw
from models.group_buy import GroupBuy, GroupMember
from tests.helpers import bearer, error_of, logged_in_admin

ROUTES = ("groups", "bargains", "draws")


async def _campaign(kind: str) -> Campaign:
    now = datetime.now(UTC)
    return await Campaign.create(
        type=kind, status="active", content={"zh-CN": {"title": kind}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1,
    )  # fmt: skip


async def _all_pages(client: TestClient, path: str, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(20):
        query: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(path, params=query, headers=headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


async def test_every_admin_role_reads_and_others_are_refused(client: TestClient) -> None:
    campaign = await _campaign("group_buy")
    customer = await Customer.create(openid="o_reader")
    for kind in ROUTES:
        path = f"/api/v1/admin/campaigns/{campaign.id}/{kind}"
        resp = await client.get(path)
        assert resp.status == 401 and (await error_of(resp))["code"]
        resp = await client.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert resp.status == 401
    assert customer.id
    for role in ("operator", "reviewer", "approver", "superadmin"):
        headers = bearer((await logged_in_admin(client, role))["access_token"])
        for kind in ROUTES:
            resp = await client.get(f"/api/v1/admin/campaigns/{campaign.id}/{kind}", headers=headers)
            assert resp.status == 200, (role, kind, await resp.text())


async def test_groups_page_newest_first_with_members_and_expiry(client: TestClient) -> None:
    campaign = await _campaign("group_buy")
    now = datetime.now(UTC)
    for gid in range(1, 6):
        await GroupBuy.create(
            id=gid, campaign_id=campaign.id, leader_id=100 + gid, size=3, status="filled" if gid == 2 else "open",
            virtual_members=1 if gid == 2 else 0, opened_at=now, expires_at=now + timedelta(hours=gid),
        )  # fmt: skip
        for pos in range(1, (3 if gid == 2 else gid % 3 + 1) + 1):
            virtual = gid == 2 and pos == 3
            await GroupMember.create(
                group_id=gid, position=pos, customer_id=None if virtual else 1000 * gid + pos, virtual=virtual,
                joined_at=now,
            )  # fmt: skip
    other = await _campaign("group_buy")
    await GroupBuy.create(id=99, campaign_id=other.id, leader_id=1, size=2, opened_at=now, expires_at=now)
    headers = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    path = f"/api/v1/admin/campaigns/{campaign.id}/groups"
    items = await _all_pages(client, path, headers, limit=2)
    assert [g["id"] for g in items] == [5, 4, 3, 2, 1]
    two = next(g for g in items if g["id"] == 2)
    assert (two["status"], two["size"], two["real_members"], two["virtual_members"]) == ("filled", 3, 2, 1)
    one = next(g for g in items if g["id"] == 1)
    assert (one["status"], one["real_members"], one["leader_id"]) == ("open", 2, 101)
    assert datetime.fromisoformat(one["expires_at"]) > now
    body = await (await client.get(path, headers=headers)).json()
    assert (body["open"], body["filled"], body["filled_with_virtual"]) == (4, 1, 1)


async def test_bargains_and_draws_page_newest_first(client: TestClient) -> None:
    packets = await _campaign("red_packet")
    now = datetime.now(UTC)
    for i in range(5):
        await Bargain.create(
            campaign_id=packets.id, customer_id=500 + i, participation_id=i + 1, mode="red_packet", base_value=100,
            start_price=900, floor_price=0, cut_min=1, cut_max=900, helpers_needed=10, help_limit=1,
            price=900 - 100 * i, helpers=i, seed="00" * 16, expires_at=now + timedelta(hours=24),
            finished_at=None,
        )  # fmt: skip
    headers = bearer((await logged_in_admin(client, "approver"))["access_token"])
    items = await _all_pages(client, f"/api/v1/admin/campaigns/{packets.id}/bargains", headers, limit=2)
    assert [b["customer_id"] for b in items] == [504, 503, 502, 501, 500]
    assert [b["value"] for b in items] == [500, 400, 300, 200, 100]
    assert all("seed" not in b and b["mode"] == "red_packet" and b["helpers_needed"] == 10 for b in items)

    draw = await _campaign("lucky_draw")
    customer = await Customer.create(openid="o_drawer")
    for i in range(3):
        await LuckyDraw.create(
            draw_id=f"d{i}", campaign_id=draw.id, customer_id=customer.id, prize_key="none" if i else "pts",
            prize_kind="none" if i else "points", prize_points=0 if i else 20, entry="free", day="2026-12-04",
            drawn_at=now,
        )  # fmt: skip
    items = await _all_pages(client, f"/api/v1/admin/campaigns/{draw.id}/draws", headers, limit=1)
    assert [d["draw_id"] for d in items] == ["d2", "d1", "d0"]
    assert (items[2]["prize_kind"], items[2]["prize_points"]) == ("points", 20)
    # A campaign of another type has none.
    resp = await client.get(f"/api/v1/admin/campaigns/{packets.id}/draws", headers=headers)
    assert (await resp.json()) == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("kind", ROUTES)
async def test_bad_cursor_limit_and_unknown_campaign_are_4xx(client: TestClient, kind: str) -> None:
    campaign = await _campaign("bargain")
    headers = bearer((await logged_in_admin(client, "operator"))["access_token"])
    path = f"/api/v1/admin/campaigns/{campaign.id}/{kind}"
    for query in ({"cursor": "not-a-cursor"}, {"cursor": "eyJiZWZvcmUiOiAieCJ9"}, {"limit": "0"}, {"limit": "101"}):
        resp = await client.get(path, params=query, headers=headers)
        assert resp.status == 422, (query, await resp.text())
        assert (await error_of(resp))["code"] == "validation_failed"
    resp = await client.get(f"/api/v1/admin/campaigns/999999/{kind}", headers=headers)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
