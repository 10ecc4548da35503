"""Issue 18's console pages in Chromium against the real server: a superadmin creates a
webhook endpoint (its secret shown once), reads its delivery log after a delivery and
redelivers it, disables it; every admin reads the alerts, open or cleared."""

from __future__ import annotations

from services import outbound
from tests.console.conftest import DESKTOP, new_page
from tests.console.test_admin_customers import field
from tests.console.test_admin_roles_calendar import login
from tests.helpers import bearer, create_admin, logged_in_admin
from tests.webhooks.fixtures import Receiver, sender


async def test_superadmin_manages_a_webhook_and_reads_its_deliveries_and_the_alerts(console, browser):
    client = console.client
    await create_admin("suzy", "suzy-password-0123", "superadmin")
    headers = bearer((await logged_in_admin(client, "superadmin", "sam"))["access_token"])
    receiver = Receiver()
    await receiver.start()
    try:
        page = await new_page(browser, **DESKTOP)
        await login(page, console.url("/admin/webhooks"), "suzy", "suzy-password-0123")
        await field(page, "webhook-url").fill(receiver.url)
        await page.click("[data-test=webhook-create]")
        secret = (await page.inner_text("[data-test=webhook-secret-value]")).strip()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        [hook] = (await (await client.get("/api/v1/admin/webhooks", headers=headers)).json())["items"]
        assert len(hook["events"]) == 7 and "secret" not in hook

        await outbound.raise_alert(rule="claims_backlog", key="claims_backlog", message="the claims worker lags")
        await sender(client).run_once()
        assert [e["type"] for e in receiver.seen] == ["alert.raised"]
        await page.click(f"[data-test=webhook-deliveries-{hook['id']}]")
        await page.wait_for_selector("[data-test=delivery-log] >> text=alert.raised")
        [delivery] = (await (await client.get(f"/api/v1/admin/webhooks/{hook['id']}/deliveries",
                                               headers=headers)).json())["items"]  # fmt: skip
        await page.click(f"[data-test=redeliver-{delivery['id']}]")
        await page.wait_for_selector(".el-message--success")
        await sender(client).run_once()
        assert receiver.ids() == [delivery["event_id"], delivery["event_id"]]

        await page.click(f"[data-test=webhook-toggle-{hook['id']}]")
        await page.wait_for_function(
            f"document.querySelector('[data-test=webhook-state-{hook['id']}]').innerText.trim() === '已停用'"
        )
        answer = await (await client.get(f"/api/v1/admin/webhooks/{hook['id']}", headers=headers)).json()
        assert answer["active"] is False

        await page.click("[data-test=menu-alerts]")
        await page.wait_for_selector("[data-test=alert-list] >> text=the claims worker lags")
        await outbound.clear_alert("claims_backlog")
        await page.click("[data-test=alert-status-cleared]")
        await page.wait_for_selector("[data-test=alert-list] >> text=claims_backlog")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        await receiver.stop()
