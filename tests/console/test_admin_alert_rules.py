"""A campaign's alert rules on its console page, in Chromium against the real server: an
operator mutes a rule and overrides a threshold (the rest shows the settings' values); a
reviewer reads them without a save button."""

from __future__ import annotations

from server.keys import SETTINGS
from tests.console.conftest import DESKTOP, new_page
from tests.console.test_admin_customers import field
from tests.console.test_admin_roles_calendar import login
from tests.helpers import bearer, create_admin, logged_in_admin
from tests.stock.fixtures import live_coupon


async def test_operator_edits_a_campaign_alert_rules_and_a_reviewer_reads_them(console, browser):
    client = console.client
    settings = client.server.app[SETTINGS]
    await create_admin("olive", "olive-password-0123", "operator")
    await create_admin("rita", "rita-password-0123", "reviewer")
    headers = bearer((await logged_in_admin(client, "superadmin", "sam"))["access_token"])
    live = await live_coupon(client)
    path = f"/api/v1/admin/campaigns/{live.campaign.id}/alert-rules"

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url(f"/admin/campaigns/{live.campaign.id}"), "olive", "olive-password-0123")
    await page.wait_for_selector("[data-test=alert-rules] [data-test=alert-rules-save]")
    effective = (await page.inner_text("[data-test=alert-effective-drop_factor]")).strip()
    assert effective == f"({settings.alert_redemption_drop_factor:g})"
    await page.click("[data-test=alert-mute-stock_sold_out]")
    await field(page, "alert-spike_factor").fill("5")
    await page.click("[data-test=alert-rules-save]")
    await page.wait_for_selector(".el-message--success")
    answer = await (await client.get(path, headers=headers)).json()
    assert answer["muted"] == ["stock_sold_out"] and answer["overrides"]["spike_factor"] == 5
    assert answer["overrides"]["drop_factor"] is None
    await page.wait_for_function(
        "document.querySelector('[data-test=alert-effective-spike_factor]').innerText.trim() === '(5)'"
    )
    assert page.errors == []  # type: ignore[attr-defined]

    reader = await new_page(browser, **DESKTOP)
    await login(reader, console.url(f"/admin/campaigns/{live.campaign.id}"), "rita", "rita-password-0123")
    await reader.wait_for_selector("[data-test=alert-effective-spike_factor] >> text=(5)")
    assert await reader.locator("[data-test=alert-rules-save]").count() == 0
    assert await reader.locator("[data-test=alert-mute-stock_sold_out] input").is_checked()
    assert await reader.locator("[data-test=alert-mute-stock_sold_out] input").is_disabled()
    assert reader.errors == []  # type: ignore[attr-defined]
