"""The operator console in Chromium, end to end: an operator builds a flash sale with a
coupon, a banner upload and an audience rule through the forms (the live audience size
follows the rule), meets the server's validation error on the field that caused it,
submits; a reviewer sees the review queue (not the builder) and approves; the operator
can then publish."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from playwright.async_api import Page

from models.customers import Customer
from tests.console.conftest import DESKTOP, PHONE, new_page, shoot
from tests.helpers import create_admin


async def login(page: Page, url: str, username: str, password: str) -> None:
    await page.goto(url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("[data-test=login]")
    await page.wait_for_selector("[data-test=who]", state="attached")


async def pick(page: Page, select: str, option: str) -> None:
    """Chooses an option of an Element Plus select (its list is teleported to the body)."""
    await page.click(select)
    await page.locator(".el-select-dropdown__item:visible", has_text=option).first.click()
    await page.keyboard.press("Escape")


def banner_png() -> dict[str, Any]:
    out = io.BytesIO()
    Image.new("RGB", (64, 32), (230, 60, 60)).save(out, "PNG")
    return {"name": "banner.png", "mimeType": "image/png", "buffer": out.getvalue()}


async def test_operator_builds_flash_sale_reviewer_approves(console, browser):
    await create_admin("olga", "olga-password-0123", "operator")
    await create_admin("rita", "rita-password-0123", "reviewer")
    for i in range(5):
        await Customer.create(openid=f"o_c{i}", membership_tier="gold" if i < 3 else "standard")

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/"), "olga", "olga-password-0123")
    assert await page.locator("[data-test=menu-builder]").count() == 1
    assert await page.locator("[data-test=menu-review]").count() == 0
    await page.click("[data-test=menu-builder]")
    await page.wait_for_selector("[data-test=builder]")

    # No rule yet: every customer.
    await page.wait_for_selector("[data-test=audience-size]:has-text('5')")
    await page.click("[data-test=type-flash_sale]")
    await page.fill("input[name=content-zh-CN-title]", "双十二秒杀")
    # The banner by upload (the media route); the preview shows it.
    await page.set_input_files("[data-test=upload-banner] input[type=file]", files=[banner_png()])
    await page.wait_for_selector("[data-test=content-preview] img")
    await page.fill("input[name=starts_at]", "2027-01-10T10:00")
    await page.fill("input[name=ends_at]", "2027-01-10T22:00")
    await page.click("[data-test=add-coupon]")
    await page.fill("[data-test='field-coupons.0.title.zh-CN'] input", "立减十元")
    await page.fill("input[name=coupon-0-face_value]", "10")

    # The audience rule: gold members; the size follows the rule.
    await page.click("[data-test=rule-add-pred]")
    await pick(page, "[data-test=rule-pred-choices]", "gold")
    await page.wait_for_selector("[data-test=audience-size]:has-text('3')")
    assert (await page.inner_text("[data-test=audience-size]")).startswith("人群规模")
    assert '{"all":[{"tier":["gold"]}]}' in await page.inner_text("[data-test=rule-json]")
    assert (await page.inner_text("[data-test=whatif-issued]")).strip() == "3"

    # A budget smaller than one coupon: the server's 422 lands on the budget field.
    await page.fill("input[name=budget_limit]", "0.5")
    await page.click("[data-test=save-submit]")
    error = page.locator("[data-test=field-budget_limit] .el-form-item__error")
    await error.wait_for()
    assert "smaller than one coupon" in await error.inner_text()
    # A malformed amount is caught before sending, on the same field.
    await page.fill("input[name=budget_limit]", "1.234")
    await page.click("[data-test=save-submit]")
    assert (await error.inner_text()).startswith("请输入金额")
    await shoot(page, "admin-builder-desktop")

    await page.fill("input[name=budget_limit]", "1000")
    await page.click("[data-test=save-submit]")
    status = page.locator("[data-test=campaign-status]")
    await status.wait_for()
    assert await status.inner_text() == "审核中"
    campaign_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    # The author sees no review buttons on their own campaign.
    assert await page.locator("[data-test=approve]").count() == 0
    await page.click("[data-test=logout]")
    await page.wait_for_selector("[data-test=login]")

    reviewer = await new_page(browser, **PHONE)
    await login(reviewer, console.url("/admin/"), "rita", "rita-password-0123")
    await reviewer.click("[data-test=menu-toggle]")
    assert await reviewer.locator("[data-test=menu-builder]").count() == 0
    await reviewer.click("[data-test=menu-review]")
    await reviewer.click(f"[data-test=review-{campaign_id}] .el-collapse-item__header")
    await reviewer.fill("[data-test=review-comment]", "ok")
    await shoot(reviewer, "admin-review-phone")
    await reviewer.click(f"[data-test=review-{campaign_id}] [data-test=approve]")
    await reviewer.wait_for_selector(f"[data-test=review-{campaign_id}]", state="detached")

    await login(page, console.url(f"/admin/campaigns/{campaign_id}"), "olga", "olga-password-0123")
    await status.wait_for()
    assert await status.inner_text() == "已批准"
    assert await page.locator("[data-test=action-publish]").count() == 1
    await shoot(page, "admin-campaign-desktop")
    assert page.errors == []  # type: ignore[attr-defined]
    assert reviewer.errors == []  # type: ignore[attr-defined]
