"""The till page (/staff/) in Chromium at 360 px and on a desktop, against the real server:
a clerk signs in and types a customer's barcode into the focused input as a keyboard-wedge
scanner does, sees the preview, redeems with a double tap (one redemption, checked through
the API), sees a used voucher refused in plain words (zh-CN, then en), retries a
redemption whose answer was lost (the same Idempotency-Key: still one), and sees the day's
list; a manager reverses a redemption with a reason. Screenshots go to
test-artifacts/console/."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from typing import Any

import pytest
import zxingcpp
from aiohttp.test_utils import TestClient
from PIL import Image
from playwright.async_api import Page, Route

from services.accounts import operators as accounts
from tests.console.conftest import DESKTOP, PHONE, new_page, shoot
from tests.helpers import bearer
from tests.wallet.fixtures import Held, vouchers
from tests.wallet.fixtures import store as make_store

PASSWORD = "till-password-0123456789"
REDEEM = "/api/v1/staff/redemptions"


@pytest.fixture
def console_settings() -> dict[str, Any]:
    # A barcode number lives QR_TTL_SECONDS (60 s by default): a loaded machine may take
    # longer between fetching it and the browser's last use of it.
    return {"qr_ttl_seconds": 900}


async def barcode_number(client: TestClient, held: Held) -> str:
    """The 16-digit number the customer's wallet shows under its barcode (decoded from the PNG)."""
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/barcode.png", headers=held.auth)
    assert resp.status == 200, await resp.text()
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(await resp.read())))
    assert len(found.text) == 16 and found.text.isdigit()
    return found.text


async def staff_token(client: TestClient, username: str) -> dict[str, str]:
    resp = await client.post("/api/v1/staff/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return bearer((await resp.json())["access_token"])


async def sign_in(page: Page, url: str, username: str) -> None:
    await page.goto(url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=scan]")


async def scan(page: Page, number: str) -> None:
    """What a keyboard-wedge scanner does: type into whatever has the focus, then Enter."""
    assert await page.evaluate("document.activeElement && document.activeElement.id") == "scan"
    await page.keyboard.type(number)
    await page.keyboard.press("Enter")


async def fits(page: Page) -> None:
    """Nothing wider than the screen (no sideways scrolling at 360 px)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width  # type: ignore[index]


async def test_clerk_redeems_once_and_a_manager_reverses(console, browser):
    client = console.client
    shop = await make_store()
    await accounts.create_staff("clara", PASSWORD, "Clara", "clerk", shop.id)
    await accounts.create_staff("mona", PASSWORD, "Mona", "manager", shop.id)
    first, second = await vouchers(client, 2)
    clara = await staff_token(client, "clara")

    page = await new_page(browser, **PHONE)
    await sign_in(page, console.url("/staff/"), "clara")
    assert "Clara · 店员 · Jing'an flagship" in await page.inner_text("[data-test=who]")
    assert await page.locator("[data-test=reverse]").count() == 0  # clerks do not reverse

    # Scan → preview: the voucher, its value in yuan, whose, redeemable.
    number = await barcode_number(client, first)
    await scan(page, number)
    await page.wait_for_selector("[data-test=preview]")
    assert await page.inner_text("[data-test=preview-title]") == "立减"
    assert await page.inner_text("[data-test=preview-value]") == "立减 ¥10.00"
    assert "顾客" in await page.inner_text("[data-test=preview-customer]")
    assert "可以核销" in await page.inner_text("[data-test=verdict]")
    await page.fill("[data-test=amount]", "58.5")
    await fits(page)
    await shoot(page, "till-preview-360")

    # A double tap redeems once.
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if r.method == "POST" and r.url.endswith(REDEEM) else None)
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if r.method == "GET" and REDEEM + "?" in r.url else None)
    await page.dblclick("[data-test=redeem]")
    await page.wait_for_selector("[data-test=done], [data-test=redeem-error]")
    refused = page.locator("[data-test=redeem-error]")
    assert await refused.count() == 0, await refused.inner_text()
    assert "已核销：立减，优惠 ¥10.00" in await page.inner_text("[data-test=done]")  # noqa: RUF001  # the page speaks Chinese
    listed = await client.get(REDEEM, headers=clara)
    body = await listed.json()
    assert body["totals"]["count"] == 1 and len(body["items"]) == 1, body
    assert body["items"][0]["order_amount"] == 5850 and body["items"][0]["staff_name"] == "Clara"
    assert sent and len({h["idempotency-key"] for h in sent}) == 1
    assert (await first.row()).status == "used"
    await page.wait_for_selector("[data-test=redemption]")
    assert "1 笔" in await page.inner_text("[data-test=totals]")
    # "Today" is the till's day in its zone (Shanghai by default), not the UTC day.
    shanghai_today = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date().isoformat()
    assert lists and all("zone=Asia%2FShanghai" in u and f"date={shanghai_today}" in u for u in lists), lists
    assert "¥58.50" in await page.inner_text("[data-test=totals]")

    # The same barcode again (the customer shows the screen twice): refused in plain words,
    # in Chinese, then in English.
    await page.click("[data-test=scan]")
    await scan(page, number)
    verdict = page.locator("[data-test=verdict]")
    await verdict.wait_for()
    assert "这张券已于" in await verdict.inner_text() and "在 Jing'an flagship 使用过" in await verdict.inner_text()
    await page.click("[data-test=lang-switch]")
    assert "This voucher was already used on" in await verdict.inner_text()
    assert await page.locator("[data-test=redeem]").count() == 0
    await shoot(page, "till-refusal-360-en")
    await page.click("[data-test=lang-switch]")

    # The answer of a redemption is lost (the server redeemed): tapping again replays it
    # with the same Idempotency-Key instead of redeeming twice.
    await page.click("[data-test=scan]")
    await scan(page, await barcode_number(client, second))
    await page.wait_for_selector("[data-test=preview]")
    lost: list[int] = []

    async def lose_the_answer(route: Route) -> None:
        if route.request.method == "POST" and not lost:
            response = await route.fetch()
            lost.append(response.status)
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**" + REDEEM, lose_the_answer)
    sent.clear()
    await page.click("[data-test=redeem]")
    await page.wait_for_selector("[data-test=redeem-error]")
    assert lost == [201]
    assert "网络错误" in await page.inner_text("[data-test=redeem-error]")
    await page.click("[data-test=redeem]")
    await page.wait_for_selector("[data-test=done]")
    assert len(sent) == 2 and sent[0]["idempotency-key"] == sent[1]["idempotency-key"]
    body = await (await client.get(REDEEM, headers=clara)).json()
    assert body["totals"]["count"] == 2 and len(body["items"]) == 2, body
    await page.wait_for_function("document.querySelectorAll('[data-test=redemption]').length === 2")
    await fits(page)
    await shoot(page, "till-today-360")
    assert page.errors == []  # type: ignore[attr-defined]

    # A manager, on a desktop, reverses the first redemption with a reason.
    desk = await new_page(browser, **DESKTOP)
    await sign_in(desk, console.url("/staff/"), "mona")
    await desk.wait_for_selector("[data-test=redemption]")
    rows = desk.locator("[data-test=redemption]")
    assert await rows.count() == 2
    oldest = rows.nth(1)  # newest first
    await oldest.locator("[data-test=reverse]").click()
    await oldest.locator("[data-test=reverse-confirm]").click()
    assert await oldest.locator("[data-test=reverse-error]").inner_text() == "请填写撤销原因"
    await oldest.locator("[data-test=reason]").fill("顾客要求取消订单")
    await oldest.locator("[data-test=reverse-confirm]").click()
    await desk.wait_for_selector("[data-test=reversed]")
    assert "已撤销：顾客要求取消订单" in await desk.inner_text("[data-test=reversed]")  # noqa: RUF001  # Chinese punctuation
    assert "已撤销 1" in await desk.inner_text("[data-test=totals]")
    await shoot(desk, "till-manager-desktop")
    body = await (await client.get(REDEEM, headers=clara)).json()
    reversed_rows = [i for i in body["items"] if i["reversed_at"]]
    assert body["totals"] == {"count": 1, "face_value": 1000, "order_amount": 0, "reversed": 1}, body["totals"]
    assert [r["reverse_reason"] for r in reversed_rows] == ["顾客要求取消订单"]
    assert (await first.row()).status == "available"
    assert desk.errors == []  # type: ignore[attr-defined]


async def test_a_tap_while_the_amount_is_rechecked_waits_for_the_check_then_redeems(console, browser):
    """The amount re-check (debounced, then a preview request) may be in flight when the
    clerk taps: the tap is honoured once the check answers, with the typed amount."""
    client = console.client
    shop = await make_store()
    await accounts.create_staff("cleo", PASSWORD, "Cleo", "clerk", shop.id)
    [held] = await vouchers(client, 1)
    cleo = await staff_token(client, "cleo")
    page = await new_page(browser, **PHONE)
    await sign_in(page, console.url("/staff/"), "cleo")
    await scan(page, await barcode_number(client, held))
    await page.wait_for_selector("[data-test=preview]")
    rechecking = asyncio.Event()

    async def slow_recheck(route: Route) -> None:
        if route.request.post_data_json.get("order_amount") is not None:
            rechecking.set()
            await asyncio.sleep(1.5)
        await route.continue_()

    await page.route("**" + REDEEM + "/preview", slow_recheck)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and r.url.endswith(REDEEM) else None)
    await page.fill("[data-test=amount]", "20")
    await asyncio.wait_for(rechecking.wait(), 10)
    # A finger does not wait for the button to look ready (Playwright's click would).
    await page.click("[data-test=redeem]", force=True)  # the check is still on its way
    await page.wait_for_selector("[data-test=done]")
    assert len(sent) == 1
    body = await (await client.get(REDEEM, headers=cleo)).json()
    assert body["totals"]["count"] == 1 and body["items"][0]["order_amount"] == 2000, body
    assert page.errors == []  # type: ignore[attr-defined]
