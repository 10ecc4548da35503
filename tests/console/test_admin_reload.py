"""A reload of the operator console in Chromium: the routed page renders with the admin
remembered with the session while GET /admin/me is still unanswered (it is held here), and
/me's answer then replaces the remembered admin; logout forgets it."""

from __future__ import annotations

import datetime as dt
import json

from playwright.async_api import Page, Route

from tests.console.conftest import DESKTOP, new_page
from tests.helpers import bearer, logged_in_admin

REMEMBERED = "console.admin.me"


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", f"pw-{username}-0123456789")
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=who]")


async def hold_me(page: Page) -> list[Route]:
    """GET /admin/me held unanswered until the test continues it (the list fills as asked)."""
    held: list[Route] = []

    async def hold(route: Route) -> None:
        held.append(route)

    await page.route("**/api/v1/admin/me", hold)
    return held


async def test_a_reload_renders_the_page_before_me_answers(console, browser):
    operator = await logged_in_admin(console.client, "operator", "olga")
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    body = {"type": "offer", "content": {"zh-CN": {"title": "早鸟折扣"}}, "starts_at": starts.isoformat(),
            "ends_at": (starts + dt.timedelta(hours=6)).isoformat(), "channels": ["miniprogram"]}  # fmt: skip
    resp = await console.client.post("/api/v1/admin/campaigns", json=body, headers=bearer(operator["access_token"]))
    assert resp.status == 201, await resp.text()

    page = await new_page(browser, **DESKTOP)
    await sign_in(page, console.url("/admin/"), "olga")
    held = await hold_me(page)
    await page.goto(console.url("/admin/campaigns"))
    # The list's rows while /me is asked and unanswered: the remembered admin serves.
    await page.locator("[data-test=campaign-list] .el-table__row").first.wait_for(state="attached", timeout=5_000)
    assert len(held) == 1
    assert (await page.inner_text("[data-test=who]")) == "olga · 运营"
    assert await page.locator("[data-test=menu-builder]").count() == 1
    await held[0].continue_()
    await page.wait_for_load_state("networkidle")
    assert (await page.inner_text("[data-test=who]")) == "olga · 运营"

    await page.click("[data-test=logout]")
    await page.wait_for_selector("[data-test=login]")
    assert await page.evaluate(f"localStorage.getItem('{REMEMBERED}')") is None
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_remembered_role_serves_until_me_replaces_it(console, browser):
    await logged_in_admin(console.client, "operator", "olga")
    page = await new_page(browser, **DESKTOP)
    await sign_in(page, console.url("/admin/"), "olga")
    remembered = json.loads(await page.evaluate(f"localStorage.getItem('{REMEMBERED}')"))
    assert (remembered["username"], remembered["role"]) == ("olga", "operator")
    # What this browser remembers is out of date (a stand-in for any difference from the
    # server's answer): a reviewer, who may not build.
    stale = {**remembered, "username": "olga-before", "role": "reviewer"}
    await page.evaluate(f"localStorage.setItem('{REMEMBERED}', {json.dumps(json.dumps(stale))})")
    held = await hold_me(page)
    await page.goto(console.url("/admin/builder"))
    await page.wait_for_selector("[data-test=menu-review]")
    # Until /me answers: the remembered admin in the header and the menu; the builder, which
    # that role lacks, neither shown nor refused (the server may yet grant it).
    assert (await page.inner_text("[data-test=who]")) == "olga-before · 审核员"
    assert await page.locator("[data-test=menu-builder]").count() == 0
    await page.wait_for_timeout(300)
    assert len(held) == 1
    assert await page.locator("main.page > *").count() == 0
    await held[0].continue_()
    # /me's answer replaces it: the builder opens, the menu and the header follow, and the
    # answer is what is remembered now.
    await page.wait_for_selector("[data-test=builder]")
    assert (await page.inner_text("[data-test=who]")) == "olga · 运营"
    assert await page.locator("[data-test=menu-review]").count() == 0
    assert await page.locator("[data-test=forbidden]").count() == 0
    remembered = json.loads(await page.evaluate(f"localStorage.getItem('{REMEMBERED}')"))
    assert (remembered["username"], remembered["role"]) == ("olga", "operator")
    assert page.errors == []  # type: ignore[attr-defined]
