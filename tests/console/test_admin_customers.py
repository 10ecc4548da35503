"""Issue 15's console pages in Chromium against the real server: an operator finds a
customer by the phone's last four digits, adjusts their points with a reason and voids a
voucher (checked through the API); a superadmin resets a clerk's password on the accounts
page, reads the one-time password once, and the clerk is made to change it on the till page
before anything else."""

from __future__ import annotations

import datetime as dt

from playwright.async_api import Page

from models.customers import Customer, phone_suffix_of
from services.accounts import operators as accounts
from tests.console.conftest import DESKTOP, PHONE, new_page, shoot
from tests.console.test_admin_roles_calendar import login
from tests.helpers import bearer, create_admin, logged_in_admin
from tests.wallet.fixtures import store as make_store
from tests.wallet.fixtures import vouchers


def field(page: Page, test: str):
    """The text input of an Element Plus control (el-input puts the attribute on the input,
    el-input-number on its wrapper)."""
    return page.locator(f"input[data-test={test}], [data-test={test}] input").first


async def test_operator_finds_a_customer_by_phone_adjusts_points_and_voids_a_voucher(console, browser):
    client = console.client
    [held] = await vouchers(client, 1)
    voucher = await held.row()
    phone = "13800135678"
    await Customer.filter(id=voucher.customer_id).update(
        phone_number=phone, phone_suffix=phone_suffix_of(phone), nickname="Lily"
    )
    await Customer.create(openid="o_other", phone_number="13900001111", phone_suffix="1111", nickname="Other")
    await create_admin("olga", "olga-password-0123", "operator")

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/"), "olga", "olga-password-0123")
    await page.click("[data-test=menu-customers]")
    await field(page, "search-text").fill("5678")
    await page.click("[data-test=search]")
    row = page.locator(f"[data-test=customer-{voucher.customer_id}]")
    await row.wait_for()
    assert await page.locator("[data-test=customer-list] tbody tr").count() == 1
    # An operator sees the phone masked.
    assert "138****5678" in await page.inner_text("[data-test=customer-list]")
    await row.click()

    await page.wait_for_selector("[data-test=customer-profile]")
    assert (await page.inner_text("[data-test=points-balance]")).strip() == "0"
    await field(page, "points-delta").fill("120")
    await field(page, "points-reason").fill("goodwill: late delivery")
    await page.click("[data-test=points-submit]")
    await page.wait_for_function("document.querySelector('[data-test=points-balance]').innerText.trim() === '120'")
    assert "goodwill: late delivery" in await page.inner_text("[data-test=ledger]")

    await page.click(f"[data-test=void-{voucher.id}]")
    await field(page, "dialog-reason").fill("issued by mistake")
    await page.click("[data-test=dialog-confirm]")
    status = page.locator(f"[data-test=voucher-status-{voucher.id}]")
    await page.wait_for_function(
        f"document.querySelector('[data-test=voucher-status-{voucher.id}]')?.innerText.trim() === 'void'"
    )
    assert await status.inner_text() == "void"
    # Only a void voucher offers a re-issue; no void button is left on it.
    assert await page.locator(f"[data-test=void-{voucher.id}]").count() == 0
    assert await page.locator(f"[data-test=reissue-{voucher.id}]").count() == 1
    # Operators neither export nor erase.
    assert await page.locator("[data-test=erase-open]").count() == 0
    await shoot(page, "admin-customer-detail")

    # The server agrees: the points and the void, with the reasons kept.
    operator = await logged_in_admin(client, "operator", "oscar")
    resp = await client.get(f"/api/v1/admin/customers/{voucher.customer_id}", headers=bearer(operator["access_token"]))
    detail = await resp.json()
    assert detail["points"]["balance"] == 120
    assert detail["points"]["ledger"][0]["note"] == "goodwill: late delivery"
    [v] = [v for v in detail["wallet"]["vouchers"] if v["id"] == voucher.id]
    assert v["status"] == "void" and v["void_reason"] == "issued by mistake"
    assert page.errors == []  # type: ignore[attr-defined]


async def test_superadmin_resets_a_clerks_password_and_the_till_forces_a_change(console, browser):
    client = console.client
    shop = await make_store()
    await accounts.create_staff("clara", "clara-password-0123456", "Clara", "clerk", shop.id)
    await create_admin("suzy", "suzy-password-0123", "superadmin")

    admin = await new_page(browser, **DESKTOP)
    await login(admin, console.url("/admin/accounts"), "suzy", "suzy-password-0123")
    await admin.click("#tab-staff")
    await admin.click("[data-test=reset-staff-clara]")
    await admin.click(".el-message-box__btns .el-button--primary")
    otp = (await admin.locator("[data-test=one-time-password]").inner_text()).strip()
    assert len(otp) >= 8
    await shoot(admin, "admin-accounts-one-time-password")
    await admin.click("[data-test=otp-close]")
    # Shown once: closed, it is gone from the page.
    assert await admin.locator(f"text={otp}").count() == 0

    till = await new_page(browser, **PHONE)
    await till.goto(console.url("/staff/"))
    await till.fill("input[name=username]", "clara")
    await till.fill("input[name=password]", otp)
    await till.click("[data-test=login]")
    await till.wait_for_selector("[data-test=password-forced]")
    # Nothing but the form: no till, no "change my password" button.
    assert await till.locator("[data-test=scan]").count() == 0
    await shoot(till, "till-forced-password-change")
    await till.fill("[data-test=password-old]", otp)
    await till.fill("[data-test=password-new]", "velvet-harbour-2026")
    await till.fill("[data-test=password-confirm]", "velvet-harbour-2026x")
    await till.click("[data-test=password-submit]")
    assert "不一致" in await till.inner_text("[data-test=password-error]")
    await till.fill("[data-test=password-confirm]", "velvet-harbour-2026")
    await till.click("[data-test=password-submit]")
    await till.wait_for_selector("[data-test=scan]")

    # A reload keeps the till (the new tokens work); the new password logs in, the old does not.
    await till.reload()
    await till.wait_for_selector("[data-test=scan]")
    resp = await client.post("/api/v1/staff/auth/login", json={"username": "clara", "password": otp})
    assert resp.status == 401
    resp = await client.post("/api/v1/staff/auth/login", json={"username": "clara", "password": "velvet-harbour-2026"})
    assert resp.status == 200 and (await resp.json())["password_change_required"] is False
    assert admin.errors == [] and till.errors == []  # type: ignore[attr-defined]


async def test_preview_a_draft_as_a_customer_in_a_language(console, browser):
    client = console.client
    operator = await logged_in_admin(client, "operator", "olga")
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    body = {
        "type": "offer",
        "content": {
            "zh-CN": {"title": "春季特惠", "summary": "全场九折"},
            "en": {"title": "Spring offer", "summary": "10% off"},
        },
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(days=5)).isoformat(),
        "channels": ["miniprogram"],
    }
    resp = await client.post("/api/v1/admin/campaigns", json=body, headers=bearer(operator["access_token"]))
    assert resp.status == 201, await resp.text()
    campaign_id = (await resp.json())["id"]
    shopper = await Customer.create(openid="o_preview", nickname="Pia")
    await create_admin("rita", "rita-password-0123", "reviewer")

    # Any admin previews: a reviewer, say.
    page = await new_page(browser, **DESKTOP)
    await login(page, console.url(f"/admin/campaigns/{campaign_id}"), "rita", "rita-password-0123")
    await page.wait_for_selector("[data-test=preview-panel]")
    # An unknown customer is said, not a blank.
    await field(page, "preview-customer").fill("999999")
    await page.click("[data-test=preview-show]")
    await page.wait_for_selector("[data-test=preview-error]")
    await field(page, "preview-customer").fill(str(shopper.id))
    await page.click("[data-test=preview-lang]")
    await page.click(".el-select-dropdown__item:has-text('English')")
    await page.click("[data-test=preview-show]")
    await page.wait_for_selector("[data-test=preview-page]")
    assert await page.inner_text("[data-test=preview-title]") == "Spring offer"
    assert "10% off" in await page.inner_text("[data-test=preview-page]")
    # A draft: shown as it will look once published.
    await page.wait_for_selector("[data-test=preview-as-published]")
    assert await page.locator("[data-test=preview-eligibility]").count() == 1
    await shoot(page, "admin-campaign-preview")
    # A draft offers no "start now" (only approved or scheduled campaigns do).
    assert await page.locator("[data-test=action-start-now]").count() == 0
    assert page.errors == []  # type: ignore[attr-defined]


async def test_superadmin_rotates_an_integration_and_a_theme_in_use_is_not_deleted(console, browser):
    client = console.client
    await create_admin("suzy", "suzy-password-0123", "superadmin")
    headers = bearer((await logged_in_admin(client, "superadmin", "sam"))["access_token"])
    resp = await client.post("/api/v1/admin/integrations", json={"name": "crm"}, headers=headers)
    assert resp.status == 201, await resp.text()
    first_secret = (await resp.json())["secret"]
    resp = await client.post("/api/v1/admin/themes", json={"name": "春节"}, headers=headers)
    theme_id = (await resp.json())["id"]
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    body = {
        "type": "offer",
        "content": {"zh-CN": {"title": "年货节"}},
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(days=5)).isoformat(),
        "channels": ["miniprogram"],
        "theme_id": theme_id,
    }
    resp = await client.post("/api/v1/admin/campaigns", json=body, headers=headers)
    assert resp.status == 201, await resp.text()

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/integrations"), "suzy", "suzy-password-0123")
    await page.click("[data-test=rotate-crm]")
    await page.click(".el-message-box__btns .el-button--primary")
    secret = (await page.inner_text("[data-test=secret-value]")).strip()
    assert secret and secret != first_secret
    await page.wait_for_selector("[data-test=old-secret-expires]")
    await page.click("[data-test=toggle-crm]")
    await page.wait_for_function("document.querySelector('[data-test=toggle-crm]').innerText.trim() === '启用'")
    resp = await client.get("/api/v1/admin/integrations", headers=headers)
    [crm] = (await resp.json())["items"]
    assert crm["is_active"] is False and crm["previous_secret_expires_at"] is not None

    await page.click("[data-test=menu-themes]")
    await page.click(f"[data-test=delete-theme-{theme_id}]")
    await page.click(".el-message-box__btns .el-button--primary")
    await page.wait_for_selector(".el-message--error")
    resp = await client.get("/api/v1/admin/themes", headers=headers)
    assert [t["id"] for t in (await resp.json())["items"]] == [theme_id]
    await page.click(f"[data-test=rollup-{theme_id}]")
    await page.wait_for_selector("[data-test=theme-rollup]")
    assert "年货节" in await page.inner_text("[data-test=theme-rollup]")
    assert page.errors == []  # type: ignore[attr-defined]
