"""The dashboard's flash-sale monitor in Chromium: it follows grabs made through the API
(stock left) while open, refreshing every second, and shows the budget left and the
grab refusals by reason; the
redemptions page downloads its CSV with the session's token."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.console.conftest import DESKTOP, PHONE, new_page, shoot
from tests.helpers import create_admin
from tests.stock.fixtures import customers, grab_all, live_coupon


async def test_monitor_follows_grabs(console, browser):
    await create_admin("olga", "olga-password-0123", "operator")
    coupon = await live_coupon(console.client, stock=20, face_value=500, budget_limit=100_000)
    page = await new_page(browser, **DESKTOP)
    await page.goto(console.url("/admin/"))
    await page.fill("input[name=username]", "olga")
    await page.fill("input[name=password]", "olga-password-0123")
    await page.click("[data-test=login]")
    cells = page.locator("[data-test=monitor] .el-table__body tr").first.locator("td")
    await cells.nth(3).filter(has_text="20").wait_for()  # stock left before any grab
    assert "¥1,000.00" in await cells.nth(4).inner_text()

    winners = await customers(console.client, 8)
    statuses = await grab_all(console.client, coupon.grab_path, winners)
    assert statuses.count(201) == 8, statuses
    # Within a few refreshes: 12 left and the budget less 8 x 5 yuan, both live from Redis
    # (the monitor route), before the claims worker books the vouchers (not running here).
    await cells.nth(3).filter(has_text="12").wait_for()
    await cells.nth(4).filter(has_text="¥960.00").wait_for()
    await page.locator("[data-test=monitor] [data-test=refusal-limit]").wait_for(state="detached")
    # The same 8 again: each is at the per-customer limit; the monitor shows the refusals.
    again = await grab_all(console.client, coupon.grab_path, winners)
    assert again.count(409) == 8, again
    await page.locator("[data-test=monitor] [data-test=refusal-limit]").filter(has_text="8").wait_for()
    await shoot(page, "admin-dashboard-desktop")

    # The redemptions page: none yet, and its CSV (fetched with the token) is the header row.
    await page.click("[data-test=menu-redemptions]")
    await page.wait_for_selector("[data-test=totals]")
    async with page.expect_download() as download_info:
        await page.click("[data-test=csv]")
    download = await download_info.value
    assert download.suggested_filename == "redemptions.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8-sig")
    assert text.splitlines() == [
        "id,created_at,store_id,store_name,staff_id,staff_name,campaign_id,coupon_id,voucher_id,"
        "voucher_code_masked,customer_id,face_value,order_ref,order_amount,reversed_at,reversed_by,reverse_reason"
    ]

    phone = await new_page(browser, **PHONE)
    await phone.goto(console.url("/admin/"))
    await phone.fill("input[name=username]", "olga")
    await phone.fill("input[name=password]", "olga-password-0123")
    await phone.click("[data-test=login]")
    await phone.wait_for_selector("[data-test=monitor]")
    await shoot(phone, "admin-dashboard-phone")
    assert page.errors == [] and phone.errors == []  # type: ignore[attr-defined]
