"""Per-campaign alert rules (mutes and threshold overrides over the ALERT_* settings) and
alerts sent to admins' WeChat as subscribe messages, once per episode."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from models.audit import AuditEntry
from models.campaigns import Campaign
from models.notifications import Notification
from models.redemptions import Redemption
from models.webhooks import Alert
from server.keys import REDIS, SETTINGS, STOCK
from services.alerts import AlertPolicy, evaluate
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import shoppers
from tests.notify.fixtures import sender, sent_messages, subscribe
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import REDEEM, grab, qr_payload, staff_login, store, vouchers

QUIET = AlertPolicy(notify_failures=10**6, claims_backlog_seconds=10**6, min_baseline=10**6)
ME = "/api/v1/admin/me"
ALERT_TEMPLATE = "emu_alert"


def rules_path(campaign_id: int) -> str:
    return f"/api/v1/admin/campaigns/{campaign_id}/alert-rules"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def _admin(client, role: str) -> dict[str, str]:
    return bearer((await logged_in_admin(client, role))["access_token"])


async def _put(client, campaign_id: int, body: dict, auth: dict[str, str], status: int = 200) -> dict:
    resp = await client.put(rules_path(campaign_id), json=body, headers=auth)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _open(rule: str) -> list[str]:
    return [a.key for a in await Alert.filter(rule=rule, status="raised").order_by("id")]


async def test_rules_default_to_the_settings_and_overrides_are_audited(client):
    operator, reviewer = await _admin(client, "operator"), await _admin(client, "reviewer")
    live = await live_coupon(client)
    settings = client.server.app[SETTINGS]
    resp = await client.get(rules_path(live.campaign.id), headers=reviewer)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["muted"] == [] and body["updated_at"] is None
    assert set(body["overrides"].values()) == {None}
    assert body["effective"]["spike_factor"] == settings.alert_redemption_spike_factor
    assert body["effective"]["budget_horizon_hours"] == settings.alert_budget_horizon_hours

    body = await _put(client, live.campaign.id, {"muted": ["stock_sold_out"], "spike_factor": 5}, operator)
    assert body["muted"] == ["stock_sold_out"] and body["overrides"]["spike_factor"] == 5
    assert body["effective"]["spike_factor"] == 5
    assert body["effective"]["drop_factor"] == settings.alert_redemption_drop_factor  # not overridden
    [entry] = await AuditEntry.filter(action="campaign.alert_rules")
    assert entry.entity_id == live.campaign.id and entry.after == {"muted": ["stock_sold_out"], "spike_factor": 5}
    # A PUT replaces: what is left out goes back to the setting.
    body = await _put(client, live.campaign.id, {"drop_factor": 2}, operator)
    assert body["muted"] == [] and body["overrides"]["spike_factor"] is None
    assert body["effective"]["spike_factor"] == settings.alert_redemption_spike_factor
    assert (await (await client.get(rules_path(live.campaign.id), headers=reviewer)).json())["effective"][
        "drop_factor"
    ] == 2


async def test_bad_rules_are_422_and_only_operators_and_superadmins_change_them(client):
    operator, reviewer = await _admin(client, "operator"), await _admin(client, "reviewer")
    approver = await _admin(client, "approver")
    live = await live_coupon(client)
    path = rules_path(live.campaign.id)
    for body, field in [
        ({"spike_factor": 0.5}, "spike_factor"),  # below ALERT_REDEMPTION_SPIKE_FACTOR's range
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"budget_horizon_hours": -1}, "budget_horizon_hours"),
        ({"muted": ["notify_failures"]}, "muted.0"),  # a global rule: not the campaign's to mute
        ({"muted": "stock_sold_out"}, "muted"),
        ({"spike_factor": "high"}, "spike_factor"),
        ({"bogus": 1}, "bogus"),
    ]:
        resp = await client.put(path, json=body, headers=operator)
        assert resp.status == 422, (body, await resp.text())
        error = await error_of(resp)
        assert error["code"] == "validation_failed" and field in error["message"], (body, error)
    for auth in (reviewer, approver):
        resp = await client.put(path, json={"spike_factor": 5}, headers=auth)
        assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
    assert (await client.put(path, json={"spike_factor": 5})).status == 401
    assert (await client.get(path)).status == 401
    missing = await client.put(rules_path(10**9), json={}, headers=operator)
    assert missing.status == 404 and (await error_of(missing))["code"] == "not_found"
    assert (await client.get(rules_path(10**9), headers=reviewer)).status == 404
    assert await AuditEntry.filter(action="campaign.alert_rules").count() == 0
    superadmin = await _admin(client, "superadmin")
    await _put(client, live.campaign.id, {"muted": ["budget_runout"]}, superadmin)


async def test_a_campaign_horizon_decides_whether_budget_runout_is_raised(client):
    redis = client.server.app[REDIS]
    operator = await _admin(client, "operator")
    now = datetime.now(UTC)
    live = await live_coupon(client, budget_limit=100_000, campaign={"activated_at": now - timedelta(hours=1)})
    campaign_id = live.campaign.id
    # 60,000 in the first hour: the rest lasts 40 minutes, the campaign a day more. The
    # settings (no horizon) raise it; this campaign only cares about the next 15 minutes.
    await Campaign.filter(id=campaign_id).update(budget_spent=60_000)
    await _put(client, campaign_id, {"budget_horizon_hours": 0.25}, operator)
    assert (await evaluate(redis, QUIET, now)).raised == []
    # Two hours ahead: 40 minutes is within it.
    await _put(client, campaign_id, {"budget_horizon_hours": 2}, operator)
    assert (await evaluate(redis, QUIET, now)).raised == [f"budget_runout:{campaign_id}"]
    [alert] = await Alert.filter(rule="budget_runout")
    assert alert.details["horizon_hours"] == 2
    # And the global horizon applies to a campaign without its own.
    other = await live_coupon(client, budget_limit=100_000, campaign={"activated_at": now - timedelta(hours=1)})
    await Campaign.filter(id=other.campaign.id).update(budget_spent=60_000)
    assert (await evaluate(redis, dataclasses.replace(QUIET, budget_horizon_hours=0.25), now)).raised == []


async def test_a_campaign_spike_factor_overrides_the_setting(client):
    redis = client.server.app[REDIS]
    operator = await _admin(client, "operator")
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    held = await vouchers(client, 4)
    for h in held:
        resp = await client.post(REDEEM, json={"payload": await qr_payload(client, h)}, headers=clerk)
        assert resp.status == 201, await resp.text()
    campaign_id = (await held[0].row()).campaign_id
    now = datetime.now(UTC)
    first = await Redemption.filter(campaign_id=campaign_id).order_by("id").first()
    assert first is not None
    # 1/7 a day before, 3 in the last 24 hours: 21 times the average.
    await Redemption.filter(id=first.id).update(created_at=now - timedelta(days=3))
    policy = dataclasses.replace(QUIET, min_baseline=0.1, spike_factor=3.0)
    await _put(client, campaign_id, {"spike_factor": 50}, operator)
    assert [k for k in (await evaluate(redis, policy, now)).raised if k.startswith("redemption_")] == []
    await _put(client, campaign_id, {"spike_factor": 20}, operator)
    assert (await evaluate(redis, policy, now)).raised == [f"redemption_spike:{campaign_id}"]


async def test_a_muted_rule_is_not_raised_and_muting_clears_an_open_episode(client):
    redis = client.server.app[REDIS]
    operator = await _admin(client, "operator")
    muted, loud = await live_coupon(client, stock=1), await live_coupon(client, stock=1)
    await _put(client, muted.campaign.id, {"muted": ["stock_sold_out"]}, operator)
    await grab(client, muted, await customers(client, 1, "o_mute"))
    await grab(client, loud, await customers(client, 1, "o_loud"))
    report = await evaluate(redis, QUIET)
    assert report.raised == [f"stock_sold_out:{loud.campaign.id}:{loud.template.id}"]
    # Muting the other one ends its episode at the next pass; unmuting raises a new one.
    await _put(client, loud.campaign.id, {"muted": ["stock_sold_out"]}, operator)
    assert (await evaluate(redis, QUIET)).cleared == [f"stock_sold_out:{loud.campaign.id}:{loud.template.id}"]
    assert await _open("stock_sold_out") == []
    await _put(client, muted.campaign.id, {}, operator)
    assert (await evaluate(redis, QUIET)).raised == [f"stock_sold_out:{muted.campaign.id}:{muted.template.id}"]


# --- WeChat ------------------------------------------------------------------------------


async def test_admins_bind_a_wechat_openid_and_opt_in(client):
    login = await logged_in_admin(client, "reviewer")
    me = bearer(login["access_token"])
    assert login["admin"]["wechat_openid"] is None and login["admin"]["alert_wechat"] is False
    resp = await client.patch(ME, json={"alert_wechat": True}, headers=me)  # nothing bound yet
    assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"
    for body in ({}, {"wechat_openid": "a b"}, {"wechat_openid": "x"}, {"alert_wechat": "yes"}, {"role": "superadmin"}):
        assert (await client.patch(ME, json=body, headers=me)).status == 422, body
    resp = await client.patch(ME, json={"wechat_openid": "o_admin_wx_1", "alert_wechat": True}, headers=me)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["wechat_openid"] == "o_admin_wx_1" and body["alert_wechat"] is True
    assert (await (await client.get(ME, headers=me)).json())["alert_wechat"] is True
    # A superadmin can unbind it for them (which turns the messages off).
    boss = await _admin(client, "superadmin")
    resp = await client.patch(f"/api/v1/admin/admins/{body['id']}", json={"wechat_openid": None}, headers=boss)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["alert_wechat"] is False
    resp = await client.patch(f"/api/v1/admin/admins/{body['id']}", json={"wechat_openid": "o_x_123"}, headers=me)
    assert resp.status == 403
    entries = await AuditEntry.filter(action="admin.wechat").order_by("id")
    assert [e.after for e in entries] == [
        {"wechat_openid": "o_admin_wx_1", "alert_wechat": True},
        {"wechat_openid": None, "alert_wechat": False},
    ]


async def test_an_alert_is_sent_to_opted_in_admins_once_per_episode_and_not_on_clear(client):
    app = client.server.app
    redis = app[REDIS]
    # The operator is a user of the mini program too, and accepted the alert template twice there.
    [wx_user] = await shoppers(client, 1, "o_ops_phone")
    await subscribe(client, wx_user, ALERT_TEMPLATE)
    await subscribe(client, wx_user, ALERT_TEMPLATE)
    operator = await _admin(client, "operator")
    resp = await client.patch(ME, json={"wechat_openid": wx_user.openid, "alert_wechat": True}, headers=operator)
    assert resp.status == 200, await resp.text()
    # Bound but not opted in, and opted in with an openid nobody uses: no message.
    idle = bearer((await logged_in_admin(client, "reviewer", "idle"))["access_token"])
    await client.patch(ME, json={"wechat_openid": wx_user.openid}, headers=idle)
    stranger = bearer((await logged_in_admin(client, "reviewer", "stranger"))["access_token"])
    await client.patch(ME, json={"wechat_openid": "o_never_opened", "alert_wechat": True}, headers=stranger)

    live = await live_coupon(client, stock=1)
    await grab(client, live, await customers(client, 1, "o_alert_buyer"))
    assert (await evaluate(redis, QUIET)).raised == [f"stock_sold_out:{live.campaign.id}:{live.template.id}"]
    assert (await evaluate(redis, QUIET)).raised == []  # the same episode
    [row] = await Notification.filter(kind="alert")
    assert row.customer_id == wx_user.id and row.payload["rule"] == "stock_sold_out"
    assert (await sender(client).run_once()).sent == 1
    [message] = [m for m in await sent_messages(client) if m["template_id"] == ALERT_TEMPLATE]
    assert message["touser"] == wx_user.openid
    assert message["data"]["thing1"]["value"] == "stock_sold_out"

    await app[STOCK].add_stock(live.template.id, 5)  # back to normal: cleared, nothing sent
    assert (await evaluate(redis, QUIET)).cleared == [f"stock_sold_out:{live.campaign.id}:{live.template.id}"]
    assert await Notification.filter(kind="alert").count() == 1
    await sender(client).run_once()
    assert len([m for m in await sent_messages(client) if m["template_id"] == ALERT_TEMPLATE]) == 1

    # A second episode: a second message.
    await grab(client, live, await customers(client, 5, "o_alert_more"))
    assert (await evaluate(redis, QUIET)).raised == [f"stock_sold_out:{live.campaign.id}:{live.template.id}"]
    assert (await sender(client).run_once()).sent == 1
    assert len([m for m in await sent_messages(client) if m["template_id"] == ALERT_TEMPLATE]) == 2
    assert await Notification.filter(kind="alert").count() == 2
