"""The operator console in Chromium: menus by role, a page the role may not open shown as
"not allowed" (never blank), the language switch, and the calendar flagging campaigns that
are mutually exclusive and run the same day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.async_api import Page

from tests.console.conftest import DESKTOP, PHONE, new_page, shoot
from tests.helpers import bearer, create_admin, logged_in_admin


async def login(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=who]", state="attached")


async def menu(page: Page) -> list[str]:
    await page.wait_for_selector("[data-test=menu-dashboard]", state="attached")
    names = await page.locator("[data-test=menu] a").evaluate_all("els => els.map(e => e.dataset.test)")
    return [n.removeprefix("menu-") for n in names]


async def test_menus_by_role_forbidden_pages_and_language(console, browser):
    await create_admin("rita", "rita-password-0123", "reviewer")
    await create_admin("olga", "olga-password-0123", "operator")
    await create_admin("suzy", "suzy-password-0123", "superadmin")

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/"), "rita", "rita-password-0123")
    reviewer_menu = await menu(page)
    assert "review" in reviewer_menu and "builder" not in reviewer_menu and "audit" not in reviewer_menu
    # The builder by its address: a page saying so, not a blank one.
    await page.goto(console.url("/admin/builder"))
    await page.wait_for_selector("[data-test=forbidden]")
    assert "没有权限" in await page.inner_text("[data-test=forbidden]")
    await page.click("[data-test=lang-switch]")
    assert (await page.inner_text("[data-test=menu-review]")).strip() == "Review queue"
    assert "Not allowed" in await page.inner_text("[data-test=forbidden]")
    await shoot(page, "admin-forbidden-desktop-en")
    await page.click("[data-test=lang-switch]")
    assert (await page.inner_text("[data-test=menu-review]")).strip() == "审核队列"
    await page.click("[data-test=logout]")

    await login(page, console.url("/admin/audit"), "olga", "olga-password-0123")
    await page.wait_for_selector("[data-test=forbidden]")
    operator_menu = await menu(page)
    assert "builder" in operator_menu and "review" not in operator_menu and "integrations" not in operator_menu
    await page.click("[data-test=logout]")

    phone = await new_page(browser, **PHONE)
    await login(phone, console.url("/admin/"), "suzy", "suzy-password-0123")
    assert len(await menu(phone)) == 19
    await phone.click("[data-test=menu-toggle]")
    await shoot(phone, "admin-menu-phone")
    await phone.click("[data-test=menu-campaigns]")
    await phone.wait_for_selector("[data-test=campaign-list]")
    await shoot(phone, "admin-campaigns-phone")
    assert page.errors == [] and phone.errors == []  # type: ignore[attr-defined]


def _campaign(title: str, starts: dt.datetime, hours: int) -> dict[str, Any]:
    return {
        "type": "offer",
        "content": {"zh-CN": {"title": title}},
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(hours=hours)).isoformat(),
        "channels": ["miniprogram"],
    }


async def _submitted(client: Any, headers: dict[str, str], title: str, starts: dt.datetime, hours: int) -> int:
    """A campaign made and submitted through the API (drafts are not on the calendar)."""
    resp = await client.post("/api/v1/admin/campaigns", json=_campaign(title, starts, hours), headers=headers)
    assert resp.status == 201, await resp.text()
    campaign_id = int((await resp.json())["id"])
    resp = await client.post(f"/api/v1/admin/campaigns/{campaign_id}/submit", json={}, headers=headers)
    assert resp.status == 200, await resp.text()
    return campaign_id


def _next_month() -> dt.date:
    """The first day of the month after the one the operator is in (Shanghai)."""
    shanghai_today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date()
    return (shanghai_today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


async def test_calendar_flags_exclusive_campaigns_on_the_day(console, browser):
    operator = await logged_in_admin(console.client, "operator", "olga")
    headers = bearer(operator["access_token"])
    # The month after the one the operator is in, on its 15th (UTC).
    first_next = _next_month()
    day = dt.datetime(first_next.year, first_next.month, 15, 2, tzinfo=dt.UTC)
    ids = [
        await _submitted(console.client, headers, title, day, hours)
        for title, hours in (("早鸟折扣", 6), ("会员日", 6), ("周末特惠", 30))
    ]
    early, members, weekend = ids
    resp = await console.client.put(
        f"/api/v1/admin/campaigns/{early}/exclusive", json={"campaign_ids": [members]}, headers=headers
    )
    assert resp.status == 200, await resp.text()

    page = await new_page(browser, **DESKTOP)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/admin/" in r.url else None)
    await page.goto(console.url("/admin/"))
    await page.fill("input[name=username]", "olga")
    await page.fill("input[name=password]", "pw-olga-0123456789")
    await page.click("[data-test=login]")
    await page.click("[data-test=menu-calendar]")
    await page.wait_for_selector("[data-test=calendar]")
    await page.click("text=下一页")
    await page.wait_for_selector(f"[data-test=cal-title]:has-text('{first_next:%Y-%m}')")
    cell = page.locator(f"[data-day='{day:%Y-%m-%d}']")
    await cell.locator("[data-test=exclusive-flag]").wait_for()
    clashing = await cell.locator(".entry.clashing").evaluate_all("els => els.map(e => +e.dataset.campaign)")
    assert sorted(clashing) == sorted([early, members])
    assert await cell.locator(f"[data-campaign='{weekend}'].clashing").count() == 0
    # The next day only the weekend campaign runs: no flag.
    next_day = page.locator(f"[data-day='{day + dt.timedelta(days=1):%Y-%m-%d}']")
    await next_day.locator(f"[data-campaign='{weekend}']").wait_for()
    assert await next_day.locator("[data-test=exclusive-flag]").count() == 0
    # The window's campaigns are listed under the grid (their rows come after its paint).
    listed = page.locator("[data-test=cal-campaigns] [data-listed]")
    await listed.nth(len(ids) - 1).wait_for()
    assert sorted(await listed.evaluate_all("els => els.map(e => +e.dataset.listed)")) == sorted(ids)
    # The clashes came in one call for the month, not one per campaign; the calendar asked
    # for a bounded window.
    assert not [u for u in asked if "/campaigns/" in u and "/overlaps" in u]
    window = f"date_from={first_next:%Y-%m-%d}"
    assert any("/api/v1/admin/calendar/overlaps?" in u and window in u for u in asked)
    assert any("/api/v1/admin/calendar?" in u and window in u and "per_day=" in u for u in asked)
    await shoot(page, "admin-calendar-desktop")
    await page.click("[data-test=cal-mode] >> text=周")
    await page.wait_for_selector("[data-test=calendar].week")
    await shoot(page, "admin-calendar-week-desktop")
    assert page.errors == []  # type: ignore[attr-defined]


#: Counts animation frames and notes the frame in which the calendar's first entry and the
#: list's first row entered the page.
FRAMES = """
window.__frames = 0;
window.__seen = {};
(function tick() { window.__frames++; requestAnimationFrame(tick); })();
const firsts = [['grid', '[data-test=calendar] .entry'], ['list', '[data-test=cal-campaigns] [data-listed]']];
new MutationObserver(() => {
  for (const [name, selector] of firsts)
    if (!(name in window.__seen) && document.querySelector(selector)) window.__seen[name] = window.__frames;
}).observe(document, { childList: true, subtree: true });
"""


async def test_calendar_lists_the_window_after_the_grid_twenty_at_a_time(console, browser):
    operator = await logged_in_admin(console.client, "operator", "olga")
    headers = bearer(operator["access_token"])
    first_next = _next_month()
    day = dt.datetime(first_next.year, first_next.month, 10, 2, tzinfo=dt.UTC)
    ids = [await _submitted(console.client, headers, f"活动{i}", day, 6) for i in range(23)]

    page = await new_page(browser, **DESKTOP)
    await page.add_init_script(FRAMES)
    await login(page, console.url("/admin/calendar"), "olga", "pw-olga-0123456789")
    await page.wait_for_selector("[data-test=calendar]")
    await page.click("text=下一页")
    await page.wait_for_selector(f"[data-test=cal-title]:has-text('{first_next:%Y-%m}')")
    listed = page.locator("[data-test=cal-campaigns] [data-listed]")
    await listed.first.wait_for()
    # The grid's entries were on the page at least a frame before the list's rows.
    seen = await page.evaluate("window.__seen")
    assert seen["list"] > seen["grid"], seen
    assert await listed.count() == 20
    await page.click("[data-test=load-more]")
    await listed.nth(22).wait_for()
    assert sorted(await listed.evaluate_all("els => els.map(e => +e.dataset.listed)")) == sorted(ids)
    assert await page.locator("[data-test=load-more]").count() == 0
    assert page.errors == []  # type: ignore[attr-defined]
