"""The analytics page's ROI and drill-down in Chromium: an operator picks a campaign from
the ranking and sees its ROI with the inputs and the drill-down by store, then by tier;
a reviewer (no figures for that role) sees the funnel and no ROI, and no error."""

from __future__ import annotations

from tests.analytics.fixtures import shop_with_sales
from tests.console.conftest import DESKTOP, new_page, shoot
from tests.helpers import create_admin


async def _open_analytics(console, browser, username: str, role: str):
    await create_admin(username, f"{username}-password-0123", role)
    page = await new_page(browser, **DESKTOP)
    await page.goto(console.url("/admin/"))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", f"{username}-password-0123")
    await page.click("[data-test=login]")
    await page.click("[data-test=menu-analytics]")
    return page


async def test_roi_and_drilldown_on_the_analytics_page(console, browser):
    shop, _ = await shop_with_sales(console.client)
    cid = shop.live.campaign.id
    page = await _open_analytics(console, browser, "olga", "operator")
    await page.get_by_role("button", name=f"#{cid} ").click()
    # Revenue 5,000 fen against a 1,000 fen voucher: ROI (5000 - 1000) / 1000.
    await page.locator("[data-test=roi-value]").filter(has_text="4.00").wait_for()
    roi = await page.locator("[data-test=roi]").inner_text()
    assert "¥50.00" in roi and "¥10.00" in roi, roi
    table = page.locator("[data-test=drilldown]")
    await table.filter(has_text="Jing'an flagship").wait_for()
    await page.click("[data-test=by-tier]")
    await table.filter(has_text="gold").wait_for()
    await shoot(page, "admin-analytics-roi")
    assert not page.errors, page.errors

    reviewer = await _open_analytics(console, browser, "rita", "reviewer")
    await reviewer.get_by_role("button", name=f"#{cid} ").click()
    await reviewer.locator(".el-table").first.wait_for()
    await reviewer.wait_for_timeout(500)
    assert await reviewer.locator("[data-test=roi]").count() == 0
    assert await reviewer.locator(".el-alert--error").count() == 0
