"""The till page's session against the real server: an expired access token is refreshed
once and the call retried (the refresh token rotates, the old one is dead), a session whose
refresh is refused falls back to the login form (never a blank page), and signing out
revokes the refresh token on the server."""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.async_api import Page

from server.keys import SETTINGS
from services.accounts import operators as accounts
from services.core import Principal, issue_access_token
from tests.console.conftest import PHONE, new_page
from tests.wallet.fixtures import store as make_store

PASSWORD = "till-password-0123456789"
TOKENS = "console.staff.tokens"


async def stored(page: Page) -> dict[str, Any] | None:
    raw = await page.evaluate(f"localStorage.getItem('{TOKENS}')")
    return json.loads(raw) if raw else None


async def refresh_works(client: Any, refresh_token: str) -> bool:
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    return resp.status == 200


async def test_expired_access_token_is_refreshed_and_a_dead_session_shows_the_login(console, browser):
    client = console.client
    shop = await make_store()
    clerk = await accounts.create_staff("clara", PASSWORD, "Clara", "clerk", shop.id)
    page = await new_page(browser, **PHONE)
    await page.goto(console.url("/staff/"))
    await page.fill("input[name=username]", "clara")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=who]")
    first = await stored(page)
    assert first is not None

    # The access token expired 100 s ago: the reload's first call is refused with
    # token_expired, refreshed once, and retried.
    secret = client.server.app[SETTINGS].secret_key
    expired = issue_access_token(
        secret, Principal("staff", clerk.id, role="clerk", store_id=shop.id), 900, now=time.time() - 1000
    )
    refused = await client.get("/api/v1/staff/me", headers={"Authorization": f"Bearer {expired}"})
    assert (await refused.json())["error"]["code"] == "token_expired"
    await page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [TOKENS, json.dumps({"access_token": expired, "refresh_token": first["refresh_token"]})],
    )
    await page.reload()
    await page.wait_for_selector("[data-test=who]")
    assert "Clara" in await page.inner_text("[data-test=who]")
    second = await stored(page)
    assert second is not None and second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != expired
    assert not await refresh_works(client, first["refresh_token"])  # rotated: the old one is dead

    # Expired access token and a dead refresh token: back to the login form.
    await page.evaluate(
        "([key, value]) => localStorage.setItem(key, value)",
        [TOKENS, json.dumps({"access_token": expired, "refresh_token": first["refresh_token"]})],
    )
    await page.reload()
    await page.wait_for_selector("[data-test=login]")
    assert await stored(page) is None

    # Sign in again and out: the server forgets the session.
    await page.fill("input[name=username]", "clara")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=who]")
    third = await stored(page)
    assert third is not None
    async with page.expect_response("**/api/v1/auth/logout") as logout:
        await page.click("[data-test=logout]")
    assert (await logout.value).status == 204
    await page.wait_for_selector("[data-test=login]")
    assert await stored(page) is None
    assert not await refresh_works(client, third["refresh_token"])
    assert page.errors == []  # type: ignore[attr-defined]
