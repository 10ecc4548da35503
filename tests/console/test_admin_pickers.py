"""The store and campaign pickers in Chromium: they ask for their options when first opened,
not when their page mounts (a call that would compete with the page's own list), once; a
failed load leaves the picker empty and the next open asks again; a picker that already has
a value (the builder editing a campaign) loads at once, so the value shows its label."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.async_api import Page, Request, Route

from models.stores import Store
from tests.console.conftest import DESKTOP, new_page, shoot
from tests.console.test_admin_campaign_flow import login
from tests.helpers import admin_login, bearer, create_admin

PASSWORD = "olga-password-0123"
OPTION = ".el-select-dropdown__item:visible"


def _campaign(title: str, **more: Any) -> dict[str, Any]:
    starts = dt.datetime(2027, 3, 1, 2, tzinfo=dt.UTC)
    return {
        "type": "offer",
        "content": {"zh-CN": {"title": title}},
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(days=3)).isoformat(),
        "channels": ["miniprogram"],
        **more,
    }


async def _create_campaign(console: Any, body: dict[str, Any]) -> int:
    token = (await admin_login(console.client, "olga", PASSWORD))["access_token"]
    resp = await console.client.post("/api/v1/admin/campaigns", json=body, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


def _recorder(page: Page) -> list[str]:
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/admin/" in r.url else None)
    return asked


def _store_loads(asked: list[str]) -> list[str]:
    return [u for u in asked if "/api/v1/admin/stores?" in u]


def _campaign_loads(asked: list[str]) -> list[str]:
    return [u for u in asked if "/api/v1/admin/campaigns?" in u and "limit=100" in u]


async def test_pickers_load_their_options_when_first_opened(console, browser):
    await create_admin("olga", PASSWORD, "operator")
    await Store.create(code="SH1", name="静安店", city="上海", latitude=31.2, longitude=121.4)
    cid = await _create_campaign(console, _campaign("春季特惠"))

    page = await new_page(browser, **DESKTOP)
    asked = _recorder(page)
    # The first store load fails (the network drops it), later ones go through.
    failed: list[str] = []

    async def drop_first(route: Route, request: Request) -> None:
        if not failed:
            failed.append(request.url)
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/api/v1/admin/stores?*", drop_first)
    await login(page, console.url("/admin/campaigns"), "olga", PASSWORD)
    # The page's own list is in: the picker, mounted with it, has asked for nothing.
    await page.locator("[data-test=campaign-list]", has_text="春季特惠").wait_for()
    assert _store_loads(asked) == []

    picker = page.locator("[data-test=filter-store]")
    async with page.expect_event("requestfailed"):
        await picker.click()
    # Loaded and failed: an empty list (not "loading"), no error thrown in the page.
    await page.locator(".el-select-dropdown__empty:visible", has_text="无数据").wait_for()
    assert failed and await page.locator(OPTION).count() == 0
    await page.keyboard.press("Escape")
    # The next open asks again, and the store shows.
    await picker.click()
    await page.locator(OPTION, has_text="静安店 (SH1)").wait_for()
    assert len(_store_loads(asked)) == 2
    await page.keyboard.press("Escape")
    # Loaded once: a third open asks for nothing.
    await picker.click()
    await page.locator(OPTION, has_text="静安店 (SH1)").wait_for()
    assert len(_store_loads(asked)) == 2
    await page.keyboard.press("Escape")

    # The analytics page: its campaign picker waits to be opened too.
    async with page.expect_response(lambda r: "/api/v1/admin/analytics/overview" in r.url):
        await page.click("[data-test=menu-analytics]")
    await page.wait_for_selector("[data-test=campaign-picker]")
    assert _campaign_loads(asked) == []
    await page.click("[data-test=campaign-picker]")
    await page.locator(OPTION, has_text=f"#{cid} 春季特惠").click()
    assert len(_campaign_loads(asked)) == 1
    await page.wait_for_selector("[data-test=analytics-csv]")
    await shoot(page, "admin-analytics-picked")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_picker_with_a_value_shows_its_label_without_being_opened(console, browser):
    await create_admin("olga", PASSWORD, "operator")
    store = await Store.create(code="SH2", name="徐汇店", city="上海", latitude=31.1, longitude=121.4)
    cid = await _create_campaign(console, _campaign("门店专享", store_ids=[store.id]))

    page = await new_page(browser, **DESKTOP)
    asked = _recorder(page)
    await login(page, console.url(f"/admin/builder/{cid}"), "olga", PASSWORD)
    await page.wait_for_selector("[data-test=builder]")
    # The campaign's store, by its name, not its bare id.
    await page.locator(".el-select .el-tag", has_text="徐汇店 (SH2)").wait_for()
    assert len(_store_loads(asked)) == 1
    assert page.errors == []  # type: ignore[attr-defined]
