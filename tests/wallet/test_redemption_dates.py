"""Date filters of the redemption lists: days outside the supported range are a 422 at the
edge (not an overflow deep in the query), and a CSV export that fails midway does not
look like a complete file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from handlers.admin import redemptions as admin_redemptions
from models.redemptions import Redemption
from services.core import LATEST_DAY
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.wallet.fixtures import REDEEM, qr_payload, staff_login, store, vouchers

CSV = "/api/v1/admin/redemptions.csv"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _validation_failed(resp: Any, field: str) -> None:
    assert resp.status == 422, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == "validation_failed", error
    assert field in [e["field"] for e in error["details"]["errors"]], error


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1999-12-31", "3000-01-01"])
async def test_out_of_range_days_are_422_on_every_redemption_list(client, day: str) -> None:
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])
    await _validation_failed(await client.get("/api/v1/staff/redemptions", params={"date": day}, headers=clerk), "date")
    for field in ("date_from", "date_to"):
        resp = await client.get("/api/v1/admin/redemptions", params={field: day}, headers=admin)
        await _validation_failed(resp, field)
        # The export refuses before it starts streaming: a plain 422, no CSV header row.
        await _validation_failed(await client.get(CSV, params={field: day}, headers=admin), field)


async def test_the_last_supported_day_works_everywhere(client) -> None:
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])
    last = LATEST_DAY.isoformat()
    resp = await client.get("/api/v1/staff/redemptions", params={"date": last}, headers=clerk)
    assert resp.status == 200 and (await resp.json())["items"] == []
    resp = await client.get("/api/v1/admin/redemptions", params={"date_to": last}, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await client.get(CSV, params={"date_from": last, "date_to": last}, headers=admin)
    assert resp.status == 200 and (await resp.text()).startswith("id,created_at")


async def test_an_export_failing_midway_is_visibly_incomplete(client, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])

    async def failing(_filters: Any, batch: int = 500) -> AsyncIterator[list[Any]]:
        yield []
        raise RuntimeError("the database went away")

    monkeypatch.setattr(admin_redemptions.redemption_lists, "export", failing)
    resp = await client.get(CSV, headers=admin)
    assert resp.status == 200  # the header row was already on its way
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in resp.content.iter_any():
            received += chunk
    # Whoever kept the partial file sees it is incomplete, and why.
    assert received.startswith(b"id,created_at")
    last_line = received.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    assert last_line.startswith(b"# export failed"), received
    assert resp.headers["X-Request-ID"].encode() in last_line


async def test_a_store_day_in_its_zone_across_utc_midnight(client) -> None:
    # 15:30 UTC on 3 December is 23:30 in Shanghai; 16:30 UTC is already 00:30 on the 4th
    # there. The till asks for its own day with zone=Asia/Shanghai; without a zone the day
    # stays a UTC day (both on the 3rd).
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    held = await vouchers(client, 3)
    ids = []
    for h in held:
        resp = await client.post(REDEEM, json={"payload": await qr_payload(client, h)}, headers=clerk)
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    late, early, next_day = ids
    for rid, at in (
        (late, datetime(2026, 12, 3, 15, 30, tzinfo=UTC)),
        (early, datetime(2026, 12, 2, 16, 0, tzinfo=UTC)),  # 00:00 on the 3rd in Shanghai: included
        (next_day, datetime(2026, 12, 3, 16, 30, tzinfo=UTC)),
    ):
        await Redemption.filter(id=rid).update(created_at=at)

    async def listed(**params: str) -> tuple[list[int], int]:
        resp = await client.get("/api/v1/staff/redemptions", params=params, headers=clerk)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return sorted(i["id"] for i in body["items"]), body["totals"]["count"]

    assert await listed(date="2026-12-03", zone="Asia/Shanghai") == (sorted([late, early]), 2)
    assert await listed(date="2026-12-04", zone="Asia/Shanghai") == ([next_day], 1)
    assert await listed(date="2026-12-03") == (sorted([next_day, late]), 2)
    assert await listed(date="2026-12-02") == ([early], 1)
    assert await listed(date="2026-12-03", zone="UTC") == (sorted([next_day, late]), 2)
    # Today (no date) is today in the zone.
    today_there = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert await listed(zone="Asia/Shanghai") == await listed(date=today_there, zone="Asia/Shanghai")


@pytest.mark.parametrize("zone", ["Asia", "asia/shanghai", "../etc/passwd", "/etc/localtime", "Mars/Base", " UTC", ""])
async def test_an_unknown_zone_is_422(client, zone: str) -> None:
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    resp = await client.get("/api/v1/staff/redemptions", params={"zone": zone}, headers=clerk)
    await _validation_failed(resp, "zone")
