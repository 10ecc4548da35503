"""Alert rules: each raised once per episode while its condition holds, cleared when back
to normal, each raise an ``alert.raised`` webhook event; the admin list; the elected pass."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import Campaign
from models.customers import Customer
from models.notifications import Notification
from models.redemptions import Redemption
from models.webhooks import Alert, WebhookEvent
from server.keys import REDIS, SETTINGS, STOCK
from server.workers import alerts_pass
from services.alerts import AlertPolicy, evaluate, rules
from services.stock import ClaimsWorker
from tests.helpers import bearer, cheap_password_hashing, count_rows, logged_in_admin
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import REDEEM, grab, qr_payload, staff_login, store, vouchers
from tests.webhooks.fixtures import Receiver, subscribe, superadmin

ALERTS = "/api/v1/admin/alerts"
# Rules that do not concern a test stay quiet: thresholds out of reach.
QUIET = AlertPolicy(notify_failures=10**6, claims_backlog_seconds=10**6, min_baseline=10**6)


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def _open(rule: str) -> list[str]:
    return [a.key for a in await Alert.filter(rule=rule, status="raised").order_by("id")]


async def test_budget_projected_to_run_out_raises_once_and_clears(client):
    redis = client.server.app[REDIS]
    now = datetime.now(UTC)
    live = await live_coupon(client, budget_limit=100_000, campaign={"activated_at": now - timedelta(hours=1)})
    campaign = live.campaign
    await evaluate(redis, QUIET, now)
    assert await _open("budget_runout") == []  # nothing spent: no projection
    # 60,000 in the first hour: the rest (40,000) lasts 40 minutes, the campaign a day more.
    await Campaign.filter(id=campaign.id).update(budget_spent=60_000)
    report = await evaluate(redis, QUIET, now)
    assert report.raised == [f"budget_runout:{campaign.id}"]
    assert (await evaluate(redis, QUIET, now)).raised == []  # once per episode
    assert await _open("budget_runout") == [f"budget_runout:{campaign.id}"]
    [alert] = await Alert.filter(rule="budget_runout")
    assert alert.campaign_id == campaign.id and alert.details["budget_spent"] == 60_000
    await Campaign.filter(id=campaign.id).update(budget_limit=100_000_000)  # more budget: back to normal
    report = await evaluate(redis, QUIET, now)
    assert report.cleared == [f"budget_runout:{campaign.id}"] and await _open("budget_runout") == []
    await Campaign.filter(id=campaign.id).update(budget_limit=100_000)  # a second episode
    assert (await evaluate(redis, QUIET, now)).raised == [f"budget_runout:{campaign.id}"]
    assert await Alert.filter(rule="budget_runout").count() == 2


async def test_stock_sold_out_raises_once_and_clears_when_stock_is_added(client):
    redis = client.server.app[REDIS]
    live = await live_coupon(client, stock=2)
    key = f"stock_sold_out:{live.campaign.id}:{live.template.id}"
    await evaluate(redis, QUIET)
    assert await _open("stock_sold_out") == []
    await grab(client, live, await customers(client, 2, "o_sold"))
    assert (await evaluate(redis, QUIET)).raised == [key]
    assert (await evaluate(redis, QUIET)).raised == []
    await client.server.app[STOCK].add_stock(live.template.id, 5)
    assert (await evaluate(redis, QUIET)).cleared == [key]
    assert await _open("stock_sold_out") == []


def _rates(keys: list[str]) -> list[str]:
    """The redemption rules' keys (the sold-out coupon of the same campaign raises too)."""
    return [k for k in keys if k.startswith("redemption_")]


async def test_redemption_spike_and_drop_against_the_previous_days(client):
    redis = client.server.app[REDIS]
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    held = await vouchers(client, 4)
    for h in held:
        resp = await client.post(REDEEM, json={"payload": await qr_payload(client, h)}, headers=clerk)
        assert resp.status == 201, await resp.text()
    campaign_id = (await held[0].row()).campaign_id
    policy = dataclasses.replace(QUIET, min_baseline=0.1, days=7, spike_factor=3.0, drop_factor=3.0)
    now = datetime.now(UTC)
    # No history yet: not judged.
    assert _rates((await evaluate(redis, policy, now)).raised) == []
    # One of them three days ago: 1/7 a day before, 3 in the last 24 hours: a spike.
    first = await Redemption.filter(campaign_id=campaign_id).order_by("id").first()
    assert first is not None
    await Redemption.filter(id=first.id).update(created_at=now - timedelta(days=3))
    assert _rates((await evaluate(redis, policy, now)).raised) == [f"redemption_spike:{campaign_id}"]
    assert _rates((await evaluate(redis, policy, now)).raised) == []
    # All of them three days ago: 4/7 a day before, none in the last 24 hours: a drop.
    await Redemption.filter(campaign_id=campaign_id).update(created_at=now - timedelta(days=3))
    report = await evaluate(redis, policy, now)
    assert _rates(report.cleared) == [f"redemption_spike:{campaign_id}"]
    assert _rates(report.raised) == [f"redemption_drop:{campaign_id}"]
    # Back to the usual pace (4/7 a day): one today is within the factors.
    await Redemption.filter(id=first.id).update(created_at=now - timedelta(hours=1))
    assert _rates((await evaluate(redis, policy, now)).cleared) == [f"redemption_drop:{campaign_id}"]


async def test_notification_failures_over_the_threshold(client):
    redis = client.server.app[REDIS]
    customer = await Customer.create(openid="o_notify")
    policy = dataclasses.replace(QUIET, notify_failures=3)
    now = datetime.now(UTC)
    rows = []
    for i in range(3):
        row = await Notification.create(
            key=f"reward:{i}", kind="reward", customer_id=customer.id, status="failed", next_attempt_at=now,
            finished_at=now, errcode=47003, errmsg="bad data",
        )  # fmt: skip
        rows.append(row)
    assert (await evaluate(redis, policy, now)).raised == ["notify_failures"]
    assert (await evaluate(redis, policy, now)).raised == []
    await Notification.filter(id=rows[0].id).update(finished_at=now - timedelta(hours=2))  # 2 in the last hour
    assert (await evaluate(redis, policy, now)).cleared == ["notify_failures"]


async def test_claims_backlog_older_than_the_threshold(client):
    redis = client.server.app[REDIS]
    live = await live_coupon(client, stock=3)
    await grab(client, live, await customers(client, 2, "o_backlog"), persist=False)
    policy = dataclasses.replace(QUIET, claims_backlog_seconds=60)
    now = datetime.now(UTC)
    assert (await evaluate(redis, policy, now)).raised == []  # just written: young
    later = now + timedelta(minutes=5)  # the claims worker stopped five minutes ago
    assert (await evaluate(redis, policy, later)).raised == ["claims_backlog"]
    assert (await evaluate(redis, policy, later)).raised == []
    await ClaimsWorker(redis, min_idle_ms=0).drain()
    assert (await evaluate(redis, policy, later)).cleared == ["claims_backlog"]


async def test_a_raise_is_a_webhook_event_and_the_admin_list_shows_episodes(client):
    redis = client.server.app[REDIS]
    auth = await superadmin(client)
    await subscribe(client, Receiver(), auth, events=["alert.raised"])
    live = await live_coupon(client, stock=1)
    await grab(client, live, await customers(client, 1, "o_list"))
    await evaluate(redis, QUIET)
    [event] = await WebhookEvent.filter(type="alert.raised")
    assert event.payload["rule"] == "stock_sold_out" and event.payload["campaign_id"] == live.campaign.id
    await Campaign.filter(id=live.campaign.id).update(status="ended")  # the episode ends with the campaign
    assert (await evaluate(redis, QUIET)).cleared == [f"stock_sold_out:{live.campaign.id}:{live.template.id}"]
    assert await WebhookEvent.filter(type="alert.raised").count() == 1  # clearing is no new event

    reviewer = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    resp = await client.get(ALERTS, headers=reviewer)
    assert resp.status == 200, await resp.text()
    [item] = (await resp.json())["items"]
    assert item["rule"] == "stock_sold_out" and item["status"] == "cleared" and item["cleared_at"]
    assert (await (await client.get(f"{ALERTS}?status=raised", headers=reviewer)).json())["items"] == []
    assert (
        len((await (await client.get(f"{ALERTS}?campaign_id={live.campaign.id}", headers=auth)).json())["items"]) == 1
    )
    assert (await client.get(f"{ALERTS}?status=bogus", headers=reviewer)).status == 422
    assert (await client.get(ALERTS)).status == 401


async def test_the_pass_runs_in_one_process_per_interval(client):
    redis = client.server.app[REDIS]
    settings = client.server.app[SETTINGS]
    assert await alerts_pass(redis, settings) is not None
    assert await alerts_pass(redis, settings) is None  # another process (or this one) within the interval


async def test_a_pass_reads_a_page_of_campaigns_in_the_same_statements_as_one(client, monkeypatch):
    """At 10,000 active campaigns the pass read every campaign as ORM objects at once (the
    event loop held 1.3 s) and ran five statements per campaign; now a page of ``PAGE``
    campaigns costs the statements one does, and nothing is written where nothing holds."""
    redis = client.server.app[REDIS]
    now = datetime.now(UTC)
    await live_coupon(client, budget_limit=100_000)

    async def statements() -> int:
        rows = count_rows(monkeypatch)
        assert (await evaluate(redis, QUIET, now)).raised == []
        monkeypatch.undo()
        return rows.statements

    one = await statements()
    for _ in range(11):
        await live_coupon(client, budget_limit=100_000)
    assert await Campaign.filter(status="active").count() == 12
    twelve = await statements()
    assert 0 < one == twelve
    # Beyond a page, one more page's statements, and every campaign still judged.
    monkeypatch.setattr(rules, "PAGE", 5)
    paged = await statements()
    assert paged > twelve
    last = await live_coupon(client, stock=0)  # the 13th: alone on the third page
    key = f"stock_sold_out:{last.campaign.id}:{last.template.id}"
    assert (await evaluate(redis, QUIET, now)).raised == [key]
    assert (await evaluate(redis, QUIET, now)).raised == []  # once per episode, read from the open keys
