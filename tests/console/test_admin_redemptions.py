"""The redemptions page's reversal in Chromium against the real server: an operator reverses
a redemption with a reason (checked through the API: the voucher is available again); a
reviewer sees no reverse button (and the server refuses them anyway)."""

from __future__ import annotations

from models.redemptions import Redemption
from tests.console.conftest import DESKTOP, new_page, shoot
from tests.console.test_admin_customers import field
from tests.console.test_admin_roles_calendar import login
from tests.helpers import create_admin
from tests.wallet.fixtures import REDEEM, qr_payload, staff_login, vouchers
from tests.wallet.fixtures import store as make_store


async def test_an_operator_reverses_a_redemption_with_a_reason(console, browser):
    client = console.client
    shop = await make_store()
    clerk = await staff_login(client, shop.id, "clara")
    first, second = await vouchers(client, 2)
    ids = []
    for held in (first, second):
        resp = await client.post(REDEEM, json={"payload": await qr_payload(client, held)}, headers=clerk)
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    rid = ids[0]
    await create_admin("olga", "olga-password-0123", "operator")
    await create_admin("rita", "rita-password-0123", "reviewer")

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/"), "rita", "rita-password-0123")
    await page.click("[data-test=menu-redemptions]")
    await page.wait_for_selector("[data-test=redemption-list] .el-table__row")
    assert await page.locator("[data-test^=reverse-]").count() == 0
    await page.close()

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url("/admin/"), "olga", "olga-password-0123")
    await page.click("[data-test=menu-redemptions]")
    await page.click(f"[data-test=reverse-{rid}]")
    # A reason is required: nothing is sent without one.
    await page.click("[data-test=reverse-confirm]")
    await page.wait_for_selector("[data-test=reverse-error]")
    assert (await Redemption.get(id=rid)).reversed_at is None
    await field(page, "reverse-reason").fill("charged twice at the till")
    await page.click("[data-test=reverse-confirm]")
    # The list reloads: the row shows the reversal and offers no second one.
    await page.wait_for_function(
        f"!document.querySelector('[data-test=reverse-{rid}]')"
        " && document.querySelector('[data-test=redemption-list]').innerText.includes('charged twice at the till')"
    )
    assert await page.locator(f"[data-test=reverse-{ids[1]}]").count() == 1
    row = await Redemption.get(id=rid)
    assert row.reversed_at is not None and row.reverse_reason == "charged twice at the till"
    assert (await first.row()).status == "available"
    assert "1" in await page.inner_text("[data-test=totals]")
    await shoot(page, "admin-redemptions-reversed-desktop")
    assert page.errors == []  # type: ignore[attr-defined]
