"""Subscribe-message notifications over the real stack: allowances reported over HTTP, the
outbox filled where events happen, and the sender talking to the emulator over HTTP with
real Redis: sent once, never without an allowance, retried on transient errors, never
resent after a restart or a crash, within the shared rate."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniprogram_api.emulator.validation import template_data_error
from models.campaigns import CouponTemplate
from models.notifications import Notification, NotifyFanout, NotifySubscription
from models.participations import Participation
from models.redemptions import VoucherReminder
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from server.logs import JsonFormatter, RequestIdFilter
from server.settings import Settings, SettingsError
from services.notify import outbox as notify_outbox
from services.notify import parse_templates, render
from services.notify import subscriptions as notify_subscriptions
from services.wallet import expiry as voucher_expiry
from tests.helpers import bearer, count_rows, error_of, fault, logged_in_admin, wechat_calls
from tests.journey.fixtures import Shopper, make_campaign, shoppers
from tests.notify.fixtures import ENDING, EXPIRING, NEW, REWARD, SEND, SUBS, sender, sent_messages, subscribe


async def remaining(customer_id: int, template_id: str) -> int:
    row = await NotifySubscription.get_or_none(customer_id=customer_id, template_id=template_id)
    return row.remaining if row else 0


async def join(client: TestClient, campaign_id: int, who: Shopper) -> None:
    resp = await client.post(f"/api/v1/campaigns/{campaign_id}/join", headers=who.headers)
    assert resp.status == 201, await resp.text()


async def rewarded(client: TestClient, who: Shopper, title: str = "双倍积分周") -> Notification:
    """Join an offer that grants points on join: its "reward earned" row."""
    campaign = await make_campaign(reward_points=50, content={"zh-CN": {"title": title}})
    await join(client, campaign.id, who)
    return await Notification.get(key=f"reward:{(await Participation.get(campaign_id=campaign.id)).id}")


# --- allowances ---------------------------------------------------------------------------


async def test_subscriptions_are_counted_per_template(client):
    me, other = await shoppers(client, 2)
    await subscribe(client, me, REWARD, at_wechat=False)
    await subscribe(client, me, REWARD, NEW, at_wechat=False)
    # Reports arrive at once: every one counts.
    resps = await asyncio.gather(
        *(client.post(SUBS, json={"template_ids": [ENDING]}, headers=me.headers) for _ in range(10))
    )
    assert [r.status for r in resps] == [200] * 10
    resp = await client.get(SUBS, headers=me.headers)
    assert resp.status == 200
    items = {i["template_id"]: i for i in (await resp.json())["items"]}
    # Every template the configuration names is listed, those never accepted at 0 (group buy and bargain
    # results; alert: admins' alerts).
    assert {k: v["remaining"] for k, v in items.items()} == {
        REWARD: 2, NEW: 1, ENDING: 10, EXPIRING: 0, "emu_group_result": 0, "emu_bargain_result": 0, "emu_alert": 0,
    }  # fmt: skip
    assert items[REWARD]["kinds"] == ["reward"] and items[EXPIRING]["updated_at"] is None
    others = (await (await client.get(SUBS, headers=other.headers)).json())["items"]
    assert all(i["remaining"] == 0 for i in others)


async def test_unused_acceptances_stop_at_the_cap(client, monkeypatch):
    monkeypatch.setattr(notify_subscriptions, "MAX_REMAINING", 3)
    [me] = await shoppers(client, 1)
    for _ in range(5):
        await subscribe(client, me, REWARD, at_wechat=False)
    assert await remaining(me.id, REWARD) == 3


async def test_bad_subscription_reports_are_refused_and_write_nothing(client):
    [me] = await shoppers(client, 1)
    cases: list[tuple[Any, int, str, str | None]] = [
        ({"template_ids": [REWARD, "tmpl_nobody_configured"]}, 422, "validation_failed", "template_ids.1"),
        ({"template_ids": [REWARD, REWARD]}, 422, "validation_failed", "template_ids.1"),
        ({"template_ids": []}, 422, "validation_failed", "template_ids"),
        ({"template_ids": [REWARD] * 11}, 422, "validation_failed", "template_ids"),
        ({"template_ids": [""]}, 422, "validation_failed", "template_ids.0"),
        ({"template_ids": ["x" * 65]}, 422, "validation_failed", "template_ids.0"),
        ({"template_ids": [7]}, 422, "validation_failed", "template_ids.0"),
        ({"template_ids": REWARD}, 422, "validation_failed", "template_ids"),
        ({"template_ids": [REWARD], "extra": 1}, 422, "validation_failed", "extra"),
        ({}, 422, "validation_failed", "template_ids"),
        ({"template_ids": ["a\x00b"]}, 422, "validation_failed", "template_ids.0"),
    ]
    for body, status, code, field in cases:
        resp = await client.post(SUBS, json=body, headers=me.headers)
        assert resp.status == status, (body, await resp.text())
        error = await error_of(resp)
        assert error["code"] == code
        assert field in [e["field"] for e in error["details"]["errors"]], (body, error)
    resp = await client.post(SUBS, data=b"{not json", headers={**me.headers, "Content-Type": "application/json"})
    assert resp.status == 400 and (await error_of(resp))["code"] == "invalid_json"
    resp = await client.post(SUBS, json={"template_ids": [REWARD]})
    assert resp.status == 401 and (await error_of(resp))["code"] == "unauthenticated"
    assert await NotifySubscription.all().count() == 0


# --- sending ------------------------------------------------------------------------------


async def test_a_reward_message_goes_out_through_wechat_once_and_takes_the_allowance(client):
    [me] = await shoppers(client, 1)
    await subscribe(client, me, REWARD)
    row = await rewarded(client, me, title="一个超过二十个字符的非常非常长的活动标题用来测试截断")
    assert row.status == "pending" and row.kind == "reward"
    report = await sender(client).run_once()
    assert report.sent == 1
    [message] = await sent_messages(client)
    assert message["touser"] == me.openid and message["template_id"] == REWARD
    thing1 = message["data"]["thing1"]["value"]
    assert len(thing1) == 20 and thing1.endswith("…")  # cut to what WeChat takes
    assert message["data"]["thing2"]["value"] == "50积分"
    datetime.strptime(message["data"]["time3"]["value"], "%Y-%m-%d %H:%M")
    assert message["page"] == f"pages/campaign/detail?id={row.payload['campaign_id']}"
    row = await Notification.get(id=row.id)
    assert (row.status, row.errcode, row.errmsg, row.attempts) == ("sent", 0, "ok", 1)
    assert row.msgid and row.sent_at is not None and row.template_id == REWARD
    assert await remaining(me.id, REWARD) == 0
    # Another pass has nothing to do.
    assert (await sender(client).run_once()).sent == 0
    assert len(await sent_messages(client)) == 1


async def test_no_allowance_no_message(client):
    [me] = await shoppers(client, 1)
    await subscribe(client, me, NEW)  # another template
    row = await rewarded(client, me)
    report = await sender(client).run_once()
    assert report.skipped == 1 and report.sent == 0
    row = await Notification.get(id=row.id)
    assert (row.status, row.errmsg, row.allowance_held) == ("skipped", "no_allowance", False)
    assert (await wechat_calls(client)).get(SEND, 0) == 0
    assert await sent_messages(client) == []


async def test_one_allowance_two_messages_one_sent_one_recorded(client):
    [me] = await shoppers(client, 1)
    await subscribe(client, me, REWARD)
    first = await rewarded(client, me, "A")
    second = await rewarded(client, me, "B")
    # WeChat holds two acceptances, we were told of one: we still send one.
    await client.post("/_wechat/subscriptions", json={"openid": me.openid, "template_id": REWARD})
    report = await sender(client).run_once()
    assert (report.sent, report.skipped) == (1, 1)
    rows = {r.id: r for r in await Notification.all()}
    assert (rows[first.id].status, rows[second.id].status) == ("sent", "skipped")
    assert rows[second.id].errmsg == "no_allowance"
    assert len(await sent_messages(client)) == 1
    assert await remaining(me.id, REWARD) == 0


async def test_concurrent_senders_send_each_message_once(client):
    people = await shoppers(client, 6)
    for p in people:
        await subscribe(client, p, REWARD)
        await rewarded(client, p)
    senders = [sender(client) for _ in range(4)]
    reports = await asyncio.gather(*(s.run_once() for s in senders))
    assert sum(r.sent for r in reports) == 6
    messages = await sent_messages(client)
    assert sorted(m["touser"] for m in messages) == sorted(p.openid for p in people)
    assert await Notification.filter(status="sent").count() == 6
    assert all([await remaining(p.id, REWARD) == 0 for p in people])


async def test_transient_errors_are_retried_and_wechat_refusals_recorded(client):
    busy, refused, gone, tired = await shoppers(client, 4)
    for p in (busy, tired):
        await subscribe(client, p, REWARD)
    await subscribe(client, refused, REWARD, at_wechat=False)  # WeChat does not know of it ...
    await client.post("/_wechat/subscriptions", json={"openid": refused.openid, "template_id": NEW})  # ... only this
    await subscribe(client, gone, REWARD)
    busy_row = await rewarded(client, busy)
    # Busy twice, then it goes through; each failure is an answer, not a delivery.
    await fault(client, SEND, errcode=-1, times=2)
    s = sender(client)
    assert (await s.run_once()).retried == 1
    row = await Notification.get(id=busy_row.id)
    assert (row.status, row.errcode, row.attempts, row.allowance_held) == ("pending", -1, 1, True)
    assert (await s.run_once()).retried == 1
    assert (await s.run_once()).sent == 1
    row = await Notification.get(id=busy_row.id)
    assert (row.status, row.attempts, row.errcode) == ("sent", 3, 0)
    assert len(await sent_messages(client)) == 1 and await remaining(busy.id, REWARD) == 0

    # 43101: recorded; WeChat says there is no acceptance, so none is given back.
    refused_row = await rewarded(client, refused)
    assert (await s.run_once()).failed == 1
    row = await Notification.get(id=refused_row.id)
    assert (row.status, row.errcode) == ("failed", 43101) and "refuse" in (row.errmsg or "")
    assert await remaining(refused.id, REWARD) == 0

    # A dropped connection after the request went out: maybe delivered, never resent.
    gone_row = await rewarded(client, gone)
    await fault(client, SEND, drop=True)
    assert (await s.run_once()).unknown == 1
    assert (await Notification.get(id=gone_row.id)).status == "unknown"
    assert (await s.run_once()).sent == 0
    assert await remaining(gone.id, REWARD) == 0

    # Busy on every attempt: failed after the last, and the allowance comes back.
    tired_row = await rewarded(client, tired)
    await fault(client, SEND, errcode=45009, times=5)
    s2 = sender(client, notify_max_attempts=2)
    assert (await s2.run_once()).retried == 1
    assert (await s2.run_once()).failed == 1
    row = await Notification.get(id=tired_row.id)
    assert (row.status, row.errcode, row.attempts, row.allowance_held) == ("failed", 45009, 2, False)
    assert await remaining(tired.id, REWARD) == 1
    assert len(await sent_messages(client)) == 1


async def test_a_stopped_sender_finishes_its_message_and_a_restart_does_not_resend(client):
    [me] = await shoppers(client, 1)
    await subscribe(client, me, REWARD)
    row = await rewarded(client, me)
    await fault(client, SEND, delay=0.4)  # the send is in flight when the stop comes
    task = asyncio.create_task(sender(client).run_once())
    for _ in range(200):
        if (await Notification.get(id=row.id)).status == "sending":
            break
        await asyncio.sleep(0.01)
    assert (await Notification.get(id=row.id)).status == "sending"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The row in hand ran to its end before the stop went through.
    assert (await Notification.get(id=row.id)).status == "sent"
    # Restart: a new sender, nothing sent again.
    assert (await sender(client).run_once()).sent == 0
    assert len(await sent_messages(client)) == 1


async def test_a_claim_left_by_a_crash_is_never_resent(client):
    crashed, fine = await shoppers(client, 2)
    for p in (crashed, fine):
        await subscribe(client, p, REWARD)
    row = await rewarded(client, crashed)
    other = await rewarded(client, fine)
    # The crash: the claim committed (allowance taken), then the process died before WeChat answered.
    dying = sender(client)
    claim = await dying.claim(row, client.server.app[SETTINGS].notify.get("reward"))
    assert claim is not None and not isinstance(claim, str)
    assert await remaining(crashed.id, REWARD) == 0
    # The restarted sender leaves a recent claim alone (it may still be in flight elsewhere) ...
    report = await sender(client).run_once()
    assert report.sent == 1 and report.recovered == 0
    assert (await Notification.get(id=row.id)).status == "sending"
    assert (await Notification.get(id=other.id)).status == "sent"
    # ... and once the claim is older than any send can take, records it as unknown.
    late = sender(client)
    late.policy = dataclasses.replace(late.policy, stale_after_seconds=0.0)
    report = await late.run_once()
    assert report.recovered == 1 and report.sent == 0
    row = await Notification.get(id=row.id)
    assert row.status == "unknown" and "not resent" in (row.errmsg or "")
    assert [m["touser"] for m in await sent_messages(client)] == [fine.openid]
    assert await remaining(crashed.id, REWARD) == 0  # the allowance is not given back: it may be used


async def test_the_send_rate_is_shared_across_senders(client):
    people = await shoppers(client, 8)
    for p in people:
        await subscribe(client, p, REWARD)
        await rewarded(client, p)
    limited = [sender(client, notify_rate_limit=3, notify_rate_window_seconds=3600) for _ in range(2)]
    first = await limited[0].run_once()
    assert first.sent == 3 and first.rate_limited
    # Another process, and another pass, in the same window: nothing more.
    again = await asyncio.gather(*(s.run_once() for s in limited))
    assert sum(r.sent for r in again) == 0 and all(r.rate_limited for r in again)
    assert len(await sent_messages(client)) == 3
    assert await Notification.filter(status="sent").count() == 3
    assert await Notification.filter(status="pending").count() == 5
    # The rows put back keep their allowance and their attempt count.
    assert await Notification.filter(status="pending", attempts=0).count() == 5
    # Every acceptance is accounted for: still unused, held by a row put back, or used by a sent one.
    unused = sum([await remaining(p.id, REWARD) for p in people])
    held = await Notification.filter(status="pending", allowance_held=True).count()
    assert held >= 1 and unused + held + 3 == 8


# --- enqueue points -----------------------------------------------------------------------


async def test_voucher_expiring_reminders_become_messages(client):
    [me] = await shoppers(client, 1)
    await subscribe(client, me, EXPIRING)
    campaign = await make_campaign(coupons=1)
    template = await CouponTemplate.get(campaign_id=campaign.id)
    now = datetime.now(UTC)
    voucher = await Voucher.create(
        claim_id="c-1", template=template, campaign_id=campaign.id, customer_id=me.id, code="CODE1", face_value=500,
        valid_from=now - timedelta(days=1), valid_until=now + timedelta(hours=5), issued_at=now - timedelta(days=1),
    )  # fmt: skip
    redis = client.server.app[REDIS]
    report = await voucher_expiry.expiry_pass(redis, interval_seconds=60, reminder_hours=24)
    assert report is not None and report.reminders == 1
    row = await Notification.get(key=f"voucher_expiring:{voucher.id}")
    assert row.customer_id == me.id and row.payload["coupon_title"] == "券0"  # type: ignore[attr-defined]
    await redis.delete(voucher_expiry.LOCK_KEY)
    await voucher_expiry.expiry_pass(redis, interval_seconds=60, reminder_hours=24)
    assert await Notification.filter(kind="voucher_expiring").count() == 1
    assert (await sender(client).run_once()).sent == 1
    [message] = await sent_messages(client)
    assert message["template_id"] == EXPIRING and message["data"]["thing1"]["value"] == "券0"
    assert message["page"] == f"pages/wallet/detail?id={voucher.id}"
    [reminder] = await VoucherReminder.all()
    assert reminder.sent_at is not None


async def test_new_campaigns_are_announced_to_subscribers_in_their_audience(client, monkeypatch):
    monkeypatch.setattr(notify_outbox, "FANOUT_BATCH", 2)  # several batches from few customers
    shanghai = await shoppers(client, 3, prefix="o_sh", city="Shanghai")
    beijing = await shoppers(client, 2, prefix="o_bj", city="Beijing")
    for p in [*shanghai, *beijing[:1]]:
        await subscribe(client, p, NEW)
    now = datetime.now(UTC)
    public = await make_campaign(activated_at=now)
    targeted = await make_campaign(activated_at=now, visibility="targeted", audience_rule={"city": "Shanghai"})
    await make_campaign(activated_at=now, visibility="hidden")
    await make_campaign(activated_at=now - timedelta(days=3))  # long running: not news
    templates = client.server.app[SETTINGS].notify
    report = await notify_outbox.fanout_pass(templates, 24)
    assert report.new_campaign == 4 + 3
    keys = set(await Notification.filter(kind="new_campaign").values_list("key", flat=True))
    expected = {f"new_campaign:{public.id}:{p.id}" for p in [*shanghai, beijing[0]]}
    expected |= {f"new_campaign:{targeted.id}:{p.id}" for p in shanghai}
    assert keys == expected
    assert await NotifyFanout.filter(done=True, key__startswith="new_campaign:").count() == 2
    # Again: nothing twice.
    assert (await notify_outbox.fanout_pass(templates, 24)).new_campaign == 0
    assert await Notification.filter(kind="new_campaign").count() == 7
    report = await sender(client).run_once()
    assert report.sent == 4 and report.skipped == 3  # one allowance each: the second message waits for another
    assert {m["template_id"] for m in await sent_messages(client)} == {NEW}


async def test_ending_soon_goes_to_participants_still_in_the_race(client):
    joined, done, quiet = await shoppers(client, 3)
    for p in (joined, done):
        await subscribe(client, p, ENDING)
    now = datetime.now(UTC)
    closing = await make_campaign(ends_at=now + timedelta(hours=2))
    later = await make_campaign(ends_at=now + timedelta(days=5))
    for campaign in (closing, later):
        for p in (joined, done, quiet):
            await Participation.create(campaign_id=campaign.id, customer_id=p.id)
    await Participation.filter(customer_id=done.id).update(status="completed")
    templates = client.server.app[SETTINGS].notify
    report = await notify_outbox.fanout_pass(templates, 24)
    assert report.campaign_ending == 1
    [row] = await Notification.filter(kind="campaign_ending")
    assert row.key == f"campaign_ending:{closing.id}:{joined.id}"
    assert (await notify_outbox.fanout_pass(templates, 24)).campaign_ending == 0
    assert (await sender(client).run_once()).sent == 1
    [message] = await sent_messages(client)
    assert message["touser"] == joined.openid and message["data"]["thing3"]["value"] == "活动即将结束,别错过"


async def test_ending_soon_reaches_those_who_join_after_the_first_pass(client):
    """A campaign shorter than the warning window is in it from activation, when nobody
    has joined yet: those who join later (whatever their customer id) are warned too."""
    early, late = await shoppers(client, 2)  # early has the lower customer id
    for p in (early, late):
        await subscribe(client, p, ENDING)
    closing = await make_campaign(ends_at=datetime.now(UTC) + timedelta(hours=2))
    templates = client.server.app[SETTINGS].notify
    assert (await notify_outbox.fanout_pass(templates, 24)).campaign_ending == 0  # nobody yet
    await join(client, closing.id, late)
    assert (await notify_outbox.fanout_pass(templates, 24)).campaign_ending == 1
    await join(client, closing.id, early)  # a lower customer id than the one already warned
    assert (await notify_outbox.fanout_pass(templates, 24)).campaign_ending == 1
    assert (await notify_outbox.fanout_pass(templates, 24)).campaign_ending == 0
    keys = set(await Notification.filter(kind="campaign_ending").values_list("key", flat=True))
    assert keys == {f"campaign_ending:{closing.id}:{p.id}" for p in (early, late)}


# --- in the workers -------------------------------------------------------------------------


async def test_the_workers_announce_a_campaign_that_starts_and_send_it(client_with):
    client = await client_with(run_workers=True, scheduler_interval=0.05)
    [fan] = await shoppers(client, 1)
    await subscribe(client, fan, NEW)
    now = datetime.now(UTC)
    campaign = await make_campaign(status="scheduled", starts_at=now - timedelta(seconds=1))
    for _ in range(300):
        if await sent_messages(client):
            break
        await asyncio.sleep(0.02)
    [message] = await sent_messages(client)
    assert message["touser"] == fan.openid and message["template_id"] == NEW
    assert message["page"] == f"pages/campaign/detail?id={campaign.id}"
    # WeChat has the message before the sender records its answer: wait for the row.
    key = f"new_campaign:{campaign.id}:{fan.id}"
    for _ in range(300):
        row = await Notification.get(key=key)
        if row.status != "sending":
            break
        await asyncio.sleep(0.02)
    assert row.status == "sent" and await remaining(fan.id, NEW) == 0


# --- templates ------------------------------------------------------------------------------


def test_notify_templates_setting_is_checked_at_start():
    def load(raw: str | None, **env: str) -> Any:
        return Settings.from_env(env={**({"NOTIFY_TEMPLATES": raw} if raw is not None else {}), **env})

    assert set(load(None).notify.by_kind) == {
        "new_campaign", "campaign_ending", "reward", "voucher_expiring", "group_result", "bargain_result", "alert",
    }  # fmt: skip
    # A real app gets no made-up template ids.
    assert load(None, WECHAT_APPID="wx1", WECHAT_SECRET="s").notify.by_kind == {}
    good = '{"reward": {"template_id": "T1", "fields": {"thing1": "Won <reward>"}}}'
    assert load(good).notify.template_ids() == {"T1": ["reward"]}
    for raw, needle in [
        ("[]", "JSON object"),
        ("{not json", "JSON object"),
        ('{"party": {"template_id": "T", "fields": {"thing1": "x"}}}', "unknown kind 'party'"),
        ('{"reward": {"template_id": "", "fields": {"thing1": "x"}}}', "reward.template_id"),
        ('{"reward": {"template_id": "T", "fields": {}}}', "reward.fields"),
        ('{"reward": {"template_id": "T", "fields": {"Thing": "x"}}}', "not a keyword"),
        ('{"reward": {"template_id": "T", "fields": {"thing\u0661": "x"}}}', "not a keyword"),
        ('{"reward": {"template_id": "T", "fields": {"thing1": "<ends_at>"}}}', "<ends_at>"),
        ('{"reward": {"template_id": "T", "page": "p?<voucher_id>", "fields": {"thing1": "x"}}}', "reward.page"),
        ('{"reward": {"template_id": "T", "fields": {"thing1": "x"}, "color": 1}}', "NOTIFY_TEMPLATES.reward"),
    ]:
        with pytest.raises(SettingsError, match="NOTIFY_TEMPLATES") as caught:
            load(raw)
        assert needle in str(caught.value), (raw, caught.value)


def test_rendered_values_pass_wechats_field_rules():
    spec = parse_templates(
        '{"reward": {"template_id": "T", "page": "pages/c?id=<campaign_id>", "fields": {'
        '"thing1": "<campaign_title>", "thing2": "<reward>", "time3": "<earned_at>", "number4": "<points>", '
        '"character_string5": "<campaign_title>", "phrase6": "<campaign_title>", "date7": "<earned_at>", '
        '"name8": "<campaign_title>", "letter9": "<campaign_title>"}}}'
    ).get("reward")
    assert spec is not None
    for title in ["短", "x" * 200, "混合 Mixed 标题 with 符号!@# " * 5, "   ", "🎉" * 30]:
        data, page = render(
            spec,
            {
                "campaign_id": 7,
                "campaign_title": title,
                "reward": "50积分",
                "points": 50,
                "earned_at": "2024-05-01T16:30:00+00:00",
            },
            timedelta(hours=8),
        )
        assert template_data_error(data) is None, (title, data)
        assert page == "pages/c?id=7"
        assert data["time3"]["value"] == "2024-05-02 00:30"  # UTC+8
    # WeChat's numbers are ASCII digits: Arabic-Indic ones are not picked as the number.
    data, _ = render(spec, {"campaign_id": 7, "campaign_title": "t", "reward": "r", "points": "\u0661\u0662 / 3.5",
                            "earned_at": "2024-05-01T16:30:00+00:00"}, timedelta(hours=8))  # fmt: skip
    assert data["number4"]["value"] == "3.5"
    assert template_data_error({"number1": {"value": "\u0661\u0662"}}) is not None


async def test_admins_read_the_outbox_with_filters_and_counts(client):
    """What operators see: each message with WeChat's answer, filtered, with counts."""
    subscriber, stranger = await shoppers(client, 2)
    await subscribe(client, subscriber, REWARD)
    sent_row = await rewarded(client, subscriber)
    skipped_row = await rewarded(client, stranger)  # no allowance: recorded, not sent
    report = await sender(client).run_once()
    assert (report.sent, report.skipped) == (1, 1)
    admin = bearer((await logged_in_admin(client, "operator"))["access_token"])
    resp = await client.get("/api/v1/admin/notifications", headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [item["id"] for item in body["items"]] == [skipped_row.id, sent_row.id]  # newest first
    assert body["counts"] == {"pending": 0, "sending": 0, "sent": 1, "failed": 0, "skipped": 1, "unknown": 0}
    sent = (await (await client.get("/api/v1/admin/notifications?status=sent", headers=admin)).json())["items"]
    assert [(i["id"], i["customer_id"], i["errcode"], i["template_id"]) for i in sent] == [
        (sent_row.id, subscriber.id, 0, REWARD)
    ]
    mine = await client.get(f"/api/v1/admin/notifications?customer_id={stranger.id}&kind=reward", headers=admin)
    [item] = (await mine.json())["items"]
    assert (item["id"], item["status"], item["errmsg"]) == (skipped_row.id, "skipped", "no_allowance")
    page = await (await client.get("/api/v1/admin/notifications?limit=1", headers=admin)).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    bad = await client.get("/api/v1/admin/notifications?status=lost", headers=admin)
    assert bad.status == 422 and (await error_of(bad))["details"]["errors"][0]["field"] == "status"
    assert (await client.get("/api/v1/admin/notifications", headers=subscriber.headers)).status == 403


async def test_the_senders_log_line_carries_the_request_id_that_enqueued_the_message(client):
    """A message enqueued by a request (a join that earns a reward) is sent under that
    request's id: the sender's JSON log line names it, though the sender runs outside
    any request."""
    [me] = await shoppers(client, 1)
    await subscribe(client, me, REWARD, at_wechat=False)  # WeChat refuses it: a log line
    campaign = await make_campaign(reward_points=50)
    resp = await client.post(
        f"/api/v1/campaigns/{campaign.id}/join", headers={**me.headers, "X-Request-ID": "rid-join-notify-7"}
    )
    assert resp.status == 201
    row = await Notification.get(customer_id=me.id, kind="reward")
    assert row.payload[notify_outbox.REQUEST_ID_KEY] == "rid-join-notify-7"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("wxcampaign.notify")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert (await sender(client).run_once()).failed == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["msg"].startswith(f"notification {row.id} failed") and line["request_id"] == "rid-join-notify-7"


def test_every_list_of_notification_kinds_agrees() -> None:
    """The kinds are declared by services/notify/templates.py's placeholders; the model's
    tuple and the admin filter's Literal (which mypy needs spelled out) must say the same."""
    from typing import get_args

    from handlers.admin.notifications import Kind
    from models.notifications import NOTIFICATION_KINDS
    from services.notify.templates import KINDS

    assert set(NOTIFICATION_KINDS) == set(KINDS) == set(get_args(Kind))


async def test_a_fanout_pass_reads_campaigns_a_page_at_a_time(client, monkeypatch):
    """Many campaigns announced or closing at once were each read in one statement as ORM
    objects (0.9 s of event loop every pass at 10,000 in bench.console); now a page at a
    time, every one of them still announced and warned."""
    monkeypatch.setattr(notify_outbox, "CAMPAIGN_PAGE", 2, raising=False)  # absent before: the count fails
    [shopper] = await shoppers(client, 1)
    await subscribe(client, shopper, NEW)
    await subscribe(client, shopper, ENDING)
    now = datetime.now(UTC)
    fresh = [await make_campaign(activated_at=now) for _ in range(5)]
    closing = [
        await make_campaign(activated_at=now - timedelta(days=3), ends_at=now + timedelta(hours=2)) for _ in range(3)
    ]
    for campaign in closing:
        await Participation.create(campaign_id=campaign.id, customer_id=shopper.id)
    rows = count_rows(monkeypatch)
    report = await notify_outbox.fanout_pass(client.server.app[SETTINGS].notify, 24)
    assert 0 < rows.most_wide <= 2  # the ids of all of them in one statement, the rows two at a time
    assert (report.new_campaign, report.campaign_ending) == (5, 3)
    keys = set(await Notification.all().values_list("key", flat=True))
    assert keys == {f"new_campaign:{c.id}:{shopper.id}" for c in fresh} | {
        f"campaign_ending:{c.id}:{shopper.id}" for c in closing
    }
