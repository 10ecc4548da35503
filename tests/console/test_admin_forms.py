"""The social forms in the operator console (issue 17), in Chromium against the real
server: one campaign of each form type built through the builder's forms (the server
stores the block the form filled), the form's checks and the server's 422 on the fields
they concern, and a group buy's groups on its campaign page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Page

from models.campaigns import Campaign
from models.group_buy import GroupBuy, GroupMember
from tests.console.conftest import DESKTOP, new_page, shoot
from tests.console.test_admin_campaign_flow import login, pick
from tests.helpers import admin_login, bearer, create_admin

PASSWORD = "olga-password-0123"


async def _fill_number(page: Page, field: str, value: str) -> None:
    """Types into an Element Plus number input and leaves it (its value is taken on change)."""
    box = page.locator(f"[data-test='{field}'] input")
    await box.fill(value)
    await box.press("Tab")


async def _start(page: Page, url: str, kind: str, title: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("[data-test=builder]")
    await page.click(f"[data-test=type-{kind}]")
    await page.fill("input[name=content-zh-CN-title]", title)
    await page.fill("input[name=starts_at]", "2027-01-10T10:00")
    await page.fill("input[name=ends_at]", "2027-01-20T22:00")


async def _save(page: Page) -> int:
    await page.click("[data-test=save-draft]")
    await page.wait_for_selector("[data-test=campaign-status]")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


async def _stored(console: Any, campaign_id: int) -> dict[str, Any]:
    token = (await admin_login(console.client, "olga", PASSWORD))["access_token"]
    resp = await console.client.get(f"/api/v1/admin/campaigns/{campaign_id}", headers=bearer(token))
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_operator_builds_one_campaign_of_each_form(console, browser):
    await create_admin("olga", PASSWORD, "operator")
    page = await new_page(browser, **DESKTOP)
    builder = console.url("/admin/builder")
    await login(page, builder, "olga", PASSWORD)

    await _start(page, builder, "group_buy", "三人团")
    await _fill_number(page, "field-group.size", "3")
    await _fill_number(page, "field-group.group_hours", "12")
    await page.click("[data-test=group-virtual_fill]")
    await _fill_number(page, "field-group.reward_points", "30")
    group_id = await _save(page)
    await page.wait_for_selector("[data-test=form-state-group] [data-test=group-list]")

    await _start(page, builder, "bargain", "砍一刀")
    for field, value in (("start_price", "99"), ("floor_price", "9.9"), ("cut_min", "0.5"), ("cut_max", "8")):
        await page.fill(f"input[name=bargain-{field}]", value)
    await _fill_number(page, "field-bargain.helpers_needed", "20")
    await _fill_number(page, "field-bargain.hours", "48")
    bargain_id = await _save(page)
    # Its campaign page shows the prices in yuan too.
    assert "¥99.00" in await page.inner_text("[data-test=form-rules]")

    await _start(page, builder, "assist", "好友助力")
    await _fill_number(page, "field-bargain.helpers_needed", "5")
    assist_id = await _save(page)

    await _start(page, builder, "red_packet", "膨胀红包")
    await _fill_number(page, "field-red_packet.helpers_needed", "5")
    # Claimed as a voucher, its values are money: typed in yuan, stored in fen (below).
    await page.click("[data-test=red_packet-claim_as-voucher]")
    assert "(¥)" in await page.inner_text("[data-test='field-red_packet.cap']")
    for field, yuan in (("initial_value", "0.1"), ("cap", "1"), ("min_increment", "0.02")):
        await page.fill(f"input[name=red_packet-{field}]", yuan)
    # The form asks for the campaign's one coupon before sending.
    await page.click("[data-test=save-draft]")
    claim_error = page.locator("[data-test='field-red_packet.claim_as'] .el-form-item__error")
    await claim_error.wait_for()
    await page.click("[data-test=add-coupon]")
    await page.fill("[data-test='field-coupons.0.title.zh-CN'] input", "红包券")
    await page.fill("input[name=coupon-0-face_value]", "1")
    packet_id = await _save(page)
    assert "¥1.00" in await page.inner_text("[data-test=form-rules]")

    await _start(page, builder, "lucky_draw", "幸运大转盘")
    await page.click("[data-test=add-coupon]")
    await page.fill("[data-test='field-coupons.0.title.zh-CN'] input", "五元券")
    await page.fill("input[name=coupon-0-face_value]", "5")
    await page.fill("input[name=prize-0-label]", "20 积分")
    await _fill_number(page, "field-draw.prizes.0.points", "20")
    await _fill_number(page, "field-draw.prizes.0.stock", "50")
    await _fill_number(page, "field-draw.prizes.1.weight", "90")
    await page.click("[data-test=add-prize]")
    await page.fill("input[name=prize-2-key]", "first")
    await pick(page, "[data-test=prize-2-kind]", "优惠券")
    await _fill_number(page, "field-draw.prizes.2.stock", "5")
    await _fill_number(page, "field-draw.free_per_day", "2")
    await _fill_number(page, "field-draw.points_cost", "50")
    for task_id, title in ((group_id, "三人团"), (bargain_id, "砍一刀")):
        await pick(page, "[data-test=draw-task_campaign_ids]", f"#{task_id} {title}")
    await shoot(page, "admin-builder-lucky-draw")
    draw_id = await _save(page)
    await page.wait_for_selector("[data-test=form-state-draw] [data-test=prize-list]")
    assert "20 积分" in await page.inner_text("[data-test=prize-list]")
    # Edited again, its task campaigns show their titles, not bare ids (the picker loads
    # its options at once when it holds a choice).
    await page.goto(console.url(f"/admin/builder/{draw_id}"))
    tasks = page.locator("[data-test=draw-task_campaign_ids] .el-tag")
    for task_id, title in ((group_id, "三人团"), (bargain_id, "砍一刀")):
        await tasks.filter(has_text=f"#{task_id} {title}").wait_for()

    stored = {cid: await _stored(console, cid) for cid in (group_id, bargain_id, assist_id, packet_id, draw_id)}
    assert stored[group_id]["group"] == {
        "size": 3, "group_hours": 12, "max_open_per_customer": 1, "virtual_fill": True, "reward": "points",
        "reward_points": 30,
    }  # fmt: skip
    assert stored[bargain_id]["bargain"] == {
        "start_price": 9900, "floor_price": 990, "cut_min": 50, "cut_max": 800, "helpers_needed": 20, "help_limit": 1,
        "hours": 48, "reward": "campaign",
    }  # fmt: skip
    assert stored[assist_id]["type"] == "assist" and stored[assist_id]["bargain"]["helpers_needed"] == 5
    assert stored[packet_id]["red_packet"] == {
        "initial_value": 10, "cap": 100, "min_increment": 2, "helpers_needed": 5, "help_limit": 1, "hours": 24,
        "claim_as": "voucher",
    }  # fmt: skip
    assert len(stored[packet_id]["coupons"]) == 1
    draw = stored[draw_id]["draw"]
    assert [(p["key"], p["kind"], p["weight"], p["stock"]) for p in draw["prizes"]] == [
        ("points", "points", 1, 50), ("none", "none", 90, None), ("first", "coupon", 1, 5),
    ]  # fmt: skip
    assert (draw["prizes"][0]["label"], draw["prizes"][0]["points"], draw["prizes"][2]["coupon_index"]) == (
        "20 积分", 20, 0,
    )  # fmt: skip
    assert (draw["sold_out_to"], draw["free_per_day"], draw["points_cost"], draw["max_per_day"]) == ("none", 2, 50, 10)
    assert draw["task_campaign_ids"] == [group_id, bargain_id]
    for cid, kind in ((group_id, "group"), (bargain_id, "bargain"), (packet_id, "red_packet")):
        assert all(stored[cid][other] is None for other in ("group", "bargain", "red_packet", "draw") if other != kind)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_form_checks_and_the_servers_422_show_on_their_fields(console, browser):
    await create_admin("olga", PASSWORD, "operator")
    page = await new_page(browser, **DESKTOP)
    builder = console.url("/admin/builder")
    await login(page, builder, "olga", PASSWORD)

    # Caught before sending: the floor is not below the start price.
    await _start(page, builder, "bargain", "砍一刀")
    await page.fill("input[name=bargain-start_price]", "10")
    await page.fill("input[name=bargain-floor_price]", "10")
    await page.click("[data-test=save-draft]")
    error = page.locator("[data-test='field-bargain.floor_price'] .el-form-item__error")
    await error.wait_for()
    assert await error.inner_text() == "底价须低于起始价"
    # The same prize key twice, in the draw table.
    await _start(page, builder, "lucky_draw", "抽奖")
    await page.fill("input[name=prize-1-key]", "points")
    await page.click("[data-test=save-draft]")
    key_error = page.locator("[data-test='field-draw.prizes.1.key'] .el-form-item__error")
    await key_error.wait_for()
    assert await key_error.inner_text() == "标识重复"
    assert await Campaign.all().count() == 0

    # Only the server knows its time zones: its 422 lands on the draw block.
    await page.fill("input[name=prize-1-key]", "none")
    await _fill_number(page, "field-draw.prizes.0.points", "20")
    await page.fill("input[name=draw-time_zone]", "Mars/Olympus")
    await page.click("[data-test=save-draft]")
    server_error = page.locator("[data-test=error-draw]")
    await server_error.wait_for()
    assert "Mars/Olympus" in await server_error.inner_text()
    await shoot(page, "admin-builder-draw-422")
    assert await Campaign.all().count() == 0
    await page.fill("input[name=draw-time_zone]", "Asia/Shanghai")
    await _save(page)
    assert await Campaign.filter(type="lucky_draw").count() == 1


async def test_a_group_buys_groups_on_its_campaign_page(console, browser):
    await create_admin("rita", "rita-password-0123", "reviewer")
    now = datetime.now(UTC)
    campaign = await Campaign.create(
        type="group_buy", status="active", content={"zh-CN": {"title": "拼团"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=2), created_by=1,
        group_spec={"size": 3, "group_hours": 24, "max_open_per_customer": 1, "virtual_fill": True,
                    "reward": "points", "reward_points": 10},
    )  # fmt: skip
    for gid, status, real, virtual in ((71, "open", 2, 0), (72, "filled", 1, 2), (73, "failed", 1, 0)):
        await GroupBuy.create(
            id=gid, campaign_id=campaign.id, leader_id=500 + gid, size=3, status=status, virtual_members=virtual,
            opened_at=now - timedelta(hours=2), expires_at=now + timedelta(hours=gid - 70),
        )  # fmt: skip
        for pos in range(1, real + virtual + 1):
            await GroupMember.create(
                group_id=gid, position=pos, customer_id=None if pos > real else 1000 * gid + pos, virtual=pos > real,
                joined_at=now,
            )  # fmt: skip

    page = await new_page(browser, **DESKTOP)
    await login(page, console.url(f"/admin/campaigns/{campaign.id}"), "rita", "rita-password-0123")
    rows = page.locator("[data-test=group-list] .el-table__body tr")
    await rows.nth(2).wait_for()
    texts = [await rows.nth(i).inner_text() for i in range(3)]
    assert [t.split()[0] for t in texts] == ["73", "72", "71"]
    assert "失败" in texts[0] and "1 / 3" in texts[0]
    assert "已成团" in texts[1] and "3 / 3" in texts[1] and "虚拟 2" in texts[1]
    assert "进行中" in texts[2] and "2 / 3" in texts[2]
    counts = await page.inner_text("[data-test=group-counts]")
    assert counts.startswith("进行中 1 · 已成团 1") and "虚拟成团 1" in counts and counts.endswith("失败 1")
    rules = await page.inner_text("[data-test=form-rules]")
    assert "成团人数" in rules and "到期虚拟成团" in rules
    await shoot(page, "admin-campaign-group-buy")
    assert page.errors == []  # type: ignore[attr-defined]
