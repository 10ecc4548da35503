"""The operator console's shell in Chromium: the login form in zh-CN, the language switch,
a login through the admin API, a reload that keeps the session, a client route answered
by the page, and logout."""

from __future__ import annotations

from tests.console.conftest import DESKTOP, new_page, shoot
from tests.helpers import create_admin


async def test_operator_logs_in_switches_language_and_logs_out(console, browser):
    await create_admin("olga", "olga-password-0123", "operator")
    page = await new_page(browser, **DESKTOP)
    await page.goto(console.url("/admin/"))
    login = page.locator("[data-test=login]")
    assert (await login.inner_text()).strip() == "登录"
    await page.click("[data-test=lang-switch]")
    assert (await login.inner_text()).strip() == "Sign in"
    await page.fill("input[name=username]", "olga")
    await page.fill("input[name=password]", "wrong-password-0123")
    await login.click()
    assert (await page.locator("[data-test=login-error]").inner_text()) == "wrong username or password"
    await page.fill("input[name=password]", "olga-password-0123")
    await login.click()
    await page.wait_for_selector("[data-test=welcome]")
    assert (await page.inner_text("[data-test=welcome]")) == "Welcome, olga"
    # A client route reloads into the page (the server answers index.html), still signed in
    # and still in English.
    await page.goto(console.url("/admin/no/such/page"))
    await page.wait_for_selector("text=No such page")
    await shoot(page, "admin-shell-desktop")
    await page.click("[data-test=logout]")
    await page.wait_for_selector("[data-test=login]")
    assert page.errors == []  # type: ignore[attr-defined]
