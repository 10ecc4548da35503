"""Automation rules over real HTTP, real Redis, the real databases and the WeChat emulator:
the admin routes (validation, roles, audit), each trigger firing its rule once per
customer (also under concurrency), both actions, refusals recorded and not retried, the
worker finishing runs a crash left behind, and disabled rules doing nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.audience import CustomerDailyActivity
from models.audit import AuditEntry
from models.automation import AutomationRule, AutomationRun
from models.campaigns import CouponTemplate
from models.customers import Customer
from models.journey import RewardGrant
from models.participations import Participation
from models.vouchers import Voucher
from server import workers
from server.keys import JOURNEY, REDIS
from services.automation import engine as automation
from services.automation import runs as automation_runs
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin, login_code
from tests.journey.fixtures import challenge, drain_claims, make_campaign, pos, purchase, shoppers
from tests.notify.fixtures import NEW, sender, sent_messages, subscribe

RULES = "/api/v1/admin/automation-rules"
LOGIN = "/api/v1/auth/wechat/login"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _operator(client) -> dict[str, str]:
    return bearer((await logged_in_admin(client, "operator"))["access_token"])


async def _coupon(**coupon: Any) -> CouponTemplate:
    campaign = await make_campaign(coupons=1, coupon={"per_user_limit": 5, **coupon})
    return await CouponTemplate.get(campaign_id=campaign.id)


async def _rule(client, headers, trigger: dict[str, Any], action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"name": f"{trigger['type']} → {action['type']}", "trigger": trigger, "action": action, **extra}
    resp = await client.post(RULES, json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _login(client, openid: str) -> dict[str, Any]:
    resp = await client.post(LOGIN, json={"code": await login_code(client, openid)})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _vouchers(client, customer_id: int, template_id: int) -> int:
    await drain_claims(client)
    return await Voucher.filter(customer_id=customer_id, template_id=template_id).count()


async def _runs(client, headers, rule_id: int, **query: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{RULES}/{rule_id}/runs", params=query, headers=headers)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


# --------------------------------------------------------------------------- admin routes


async def test_rules_are_validated_strictly_and_nothing_bad_is_written(client):
    ops = await _operator(client)
    coupon = await _coupon()
    good = {"name": "welcome", "trigger": {"type": "registered"}, "action": {"type": "issue_coupon", "coupon_id": 1}}

    async def refused(body: dict[str, Any], status: int, code: str, field: str | None = None) -> dict[str, Any]:
        resp = await client.post(RULES, json=body, headers=ops)
        assert resp.status == status, (body, await resp.text())
        error = await error_of(resp)
        assert error["code"] == code, error
        if field is not None:
            assert any(e["field"].startswith(field) for e in error["details"]["errors"]), error
        return error

    action = {"type": "issue_coupon", "coupon_id": coupon.id}
    await refused({**good, "trigger": {"type": "birthday"}}, 422, "validation_failed", "trigger")
    await refused({**good, "action": {"type": "notify", "template": "x"}}, 422, "validation_failed", "action")
    no_coupon = {**good, "action": {"type": "issue_coupon"}}
    await refused(no_coupon, 422, "validation_failed", "action.issue_coupon.coupon_id")
    await refused({**good, "action": {**action, "coupon_id": "1"}}, 422, "validation_failed", "action")
    await refused({**good, "action": {**action, "days": 3}}, 422, "validation_failed", "action")
    await refused({**good, "action": action, "trigger": {"type": "inactive_for_days"}}, 422, "validation_failed")
    for days in (0, -1, 3651, "30", 1.5):
        bad = {**good, "action": action, "trigger": {"type": "inactive_for_days", "days": days}}
        await refused(bad, 422, "validation_failed", "trigger.inactive_for_days.days")
    await refused({**good, "action": action, "extra": 1}, 422, "validation_failed", "extra")
    await refused({**good, "action": action, "name": ""}, 422, "validation_failed", "name")
    await refused({**good, "action": action, "enabled": "yes"}, 422, "validation_failed", "enabled")
    error = await refused({**good, "action": {**action, "coupon_id": 10**9}}, 422, "unknown_coupon")
    assert error["details"]["field"] == "action.coupon_id"
    error = await refused({**good, "action": {"type": "enrol", "campaign_id": 10**9}}, 422, "unknown_campaign")
    assert error["details"]["field"] == "action.campaign_id"
    completed = {"type": "campaign_completed", "campaign_id": 10**9}
    error = await refused({**good, "action": action, "trigger": completed}, 422, "unknown_campaign")
    assert error["details"]["field"] == "trigger.campaign_id"
    resp = await client.post(RULES, data=b'{"name": ', headers={**ops, "Content-Type": "application/json"})
    assert resp.status == 400 and (await error_of(resp))["code"] == "invalid_json"
    assert await AutomationRule.all().count() == 0
    assert await AuditEntry.filter(entity_type="automation_rule").count() == 0


async def test_crud_roles_and_audit(client):
    ops = await _operator(client)
    reviewer = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    [shopper] = await shoppers(client, 1)
    coupon = await _coupon()
    follow_up = await make_campaign()
    action = {"type": "issue_coupon", "coupon_id": coupon.id}
    body = {"name": "win back", "trigger": {"type": "inactive_for_days", "days": 30}, "action": action}

    # Readers read; only operators and superadmins write; customers neither.
    resp = await client.post(RULES, json=body, headers=reviewer)
    assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
    assert (await client.post(RULES, json=body, headers=shopper.headers)).status == 403
    assert (await client.get(RULES, headers=shopper.headers)).status == 403
    assert (await client.post(RULES, json=body)).status == 401

    created = await _rule(client, ops, body["trigger"], action, name="win back")
    assert created["trigger"] == {"type": "inactive_for_days", "days": 30}
    assert created["action"] == action and created["enabled"] is True
    other = await _rule(client, ops, {"type": "voucher_expiring"}, {"type": "enrol", "campaign_id": follow_up.id})
    assert other["trigger"] == {"type": "voucher_expiring", "hours": None}
    path = f"{RULES}/{created['id']}"

    listed = await (await client.get(RULES, headers=reviewer)).json()
    assert [r["id"] for r in listed["items"]] == [other["id"], created["id"]]
    only = await (await client.get(RULES, params={"trigger": "inactive_for_days"}, headers=reviewer)).json()
    assert [r["id"] for r in only["items"]] == [created["id"]]
    resp = await client.get(RULES, params={"trigger": "birthday"}, headers=reviewer)
    assert resp.status == 422
    page = await (await client.get(RULES, params={"limit": 1}, headers=reviewer)).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    one = await (await client.get(path, headers=reviewer)).json()
    assert one["runs"] == {"pending": 0, "done": 0, "refused": 0, "failed": 0}

    # Edits: parameters, action, enabled; the trigger's type is fixed.
    resp = await client.patch(path, json={"trigger": {"type": "inactive_for_days", "days": 60}}, headers=ops)
    assert resp.status == 200 and (await resp.json())["trigger"]["days"] == 60
    resp = await client.patch(path, json={"enabled": False, "name": "win back (paused)"}, headers=ops)
    assert (await resp.json())["enabled"] is False
    disabled = await (await client.get(RULES, params={"enabled": "false"}, headers=reviewer)).json()
    assert [r["id"] for r in disabled["items"]] == [created["id"]]
    resp = await client.patch(path, json={"trigger": {"type": "registered"}}, headers=ops)
    assert resp.status == 422 and (await error_of(resp))["details"]["errors"][0]["field"] == "trigger.type"
    resp = await client.patch(path, json={"action": {"type": "enrol", "campaign_id": 10**9}}, headers=ops)
    assert resp.status == 422 and (await error_of(resp))["code"] == "unknown_campaign"
    resp = await client.patch(path, json={"enabled": True}, headers=reviewer)
    assert resp.status == 403
    resp = await client.patch(path, json={"action": {"type": "enrol", "campaign_id": follow_up.id}}, headers=ops)
    assert (await resp.json())["action"] == {"type": "enrol", "campaign_id": follow_up.id}
    rule = await AutomationRule.get(id=created["id"])
    assert rule.enabled is False and rule.trigger_params == {"days": 60} and rule.name == "win back (paused)"

    # Delete: gone from the routes, kept (disabled) for its runs' history.
    assert (await client.delete(path, headers=reviewer)).status == 403
    assert (await client.delete(path, headers=ops)).status == 204
    for resp in (
        await client.get(path, headers=reviewer),
        await client.delete(path, headers=ops),
        await client.patch(path, json={"enabled": True}, headers=ops),
        await client.get(f"{path}/runs", headers=reviewer),
        await client.get(f"{RULES}/abc", headers=reviewer),
    ):
        assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    listed = await (await client.get(RULES, headers=reviewer)).json()
    assert [r["id"] for r in listed["items"]] == [other["id"]]
    assert (await AutomationRule.get(id=created["id"])).deleted_at is not None

    actions = await AuditEntry.filter(entity_type="automation_rule", entity_id=created["id"]).order_by("id")
    assert [a.action for a in actions] == [
        "automation_rule.create", *["automation_rule.update"] * 3, "automation_rule.delete",
    ]  # fmt: skip
    assert actions[1].before == {"trigger_params": {"days": 30}}
    assert actions[1].after == {"trigger_params": {"days": 60}}


# --------------------------------------------------------------------------- triggers


async def test_registered_puts_a_coupon_in_the_new_customers_wallet_once(client):
    ops = await _operator(client)
    coupon = await _coupon()
    rule = await _rule(client, ops, {"type": "registered"}, {"type": "issue_coupon", "coupon_id": coupon.id})

    first = await _login(client, "o_auto_new")
    me = first["user"]["id"]
    wallet = await (await client.get("/api/v1/me/vouchers", headers=bearer(first["access_token"]))).json()
    assert [v["coupon_id"] for v in wallet["items"]] == [coupon.id]
    await _login(client, "o_auto_new")  # a second login is no registration
    assert await _vouchers(client, me, coupon.id) == 1
    [run] = await _runs(client, ops, rule["id"])
    assert run["customer_id"] == me and run["status"] == "done" and run["trigger"] == "registered"
    grant = await RewardGrant.get(id=run["outcome"]["grant_id"])
    assert grant.ref == f"automation:{rule['id']}:{me}" and grant.status == "issued"
    assert run["outcome"]["claim_id"] == grant.claim_id

    # Ten concurrent first logins of one person: one customer, one run, one voucher.
    codes = [await login_code(client, "o_auto_racer") for _ in range(10)]
    resps = await asyncio.gather(*(client.post(LOGIN, json={"code": c}) for c in codes))
    assert [r.status for r in resps] == [200] * 10
    racer = await Customer.get(openid="o_auto_racer")
    assert await AutomationRun.filter(customer_id=racer.id).count() == 1
    assert await _vouchers(client, racer.id, coupon.id) == 1
    assert await RewardGrant.filter(customer_id=racer.id).count() == 1


async def test_first_purchase_fires_on_the_first_purchase_only(client):
    ops = await _operator(client)
    coupon = await _coupon()
    till = await pos(client)
    veteran, newbie = await shoppers(client, 2)
    assert (await till.post(purchase("e-v1", veteran, 1000))).status == 201  # before the rule existed
    rule = await _rule(client, ops, {"type": "first_purchase"}, {"type": "issue_coupon", "coupon_id": coupon.id})

    assert (await till.post(purchase("e-v2", veteran, 1000))).status == 201
    assert await AutomationRun.filter(customer_id=veteran.id).count() == 0
    first = purchase("e-n1", newbie, 500)
    assert (await till.post(first)).status == 201
    assert await _vouchers(client, newbie.id, coupon.id) == 1
    # The same event again (a replay), and more purchases: no second run.
    assert (await till.post(first)).status == 200
    resps = await asyncio.gather(*(till.post(purchase(f"e-n{i}", newbie, 500)) for i in range(2, 8)))
    assert [r.status for r in resps] == [201] * 6
    [run] = await _runs(client, ops, rule["id"])
    assert run["customer_id"] == newbie.id and run["status"] == "done"
    assert run["context"]["event_id"]
    assert await _vouchers(client, newbie.id, coupon.id) == 1
    assert await _vouchers(client, veteran.id, coupon.id) == 0
    # Several purchases racing to be a customer's first: one run, one voucher.
    [racer] = await shoppers(client, 1, prefix="o_racer")
    resps = await asyncio.gather(*(till.post(purchase(f"e-r{i}", racer, 300)) for i in range(8)))
    assert [r.status for r in resps] == [201] * 8
    assert await AutomationRun.filter(customer_id=racer.id).count() == 1
    assert await _vouchers(client, racer.id, coupon.id) == 1


async def test_campaign_completed_enrols_in_the_follow_up_campaign(client):
    ops = await _operator(client)
    till = await pos(client)
    challenge_a = await challenge("purchases", 2)
    other = await challenge("purchases", 1)
    follow_up = await make_campaign(coupons=1)  # an offer: its coupon is the welcome reward on join
    elsewhere = await make_campaign()
    await _rule(
        client, ops, {"type": "campaign_completed", "campaign_id": challenge_a.id},
        {"type": "enrol", "campaign_id": follow_up.id},
    )  # fmt: skip
    await _rule(
        client, ops, {"type": "campaign_completed", "campaign_id": other.id},
        {"type": "enrol", "campaign_id": elsewhere.id},
    )  # fmt: skip
    [me] = await shoppers(client, 1)
    assert (await client.post(f"/api/v1/campaigns/{challenge_a.id}/join", headers=me.headers)).status == 201

    assert (await till.post(purchase("c-1", me, 100))).status == 201
    assert not await Participation.exists(campaign_id=follow_up.id, customer_id=me.id)
    assert (await till.post(purchase("c-2", me, 100))).status == 201
    assert (await Participation.get(campaign_id=challenge_a.id, customer_id=me.id)).status == "completed"
    joined = await Participation.get(campaign_id=follow_up.id, customer_id=me.id)
    run = await AutomationRun.get(customer_id=me.id)
    assert run.status == "done" and run.trigger == "campaign_completed"
    assert run.outcome == {"campaign_id": follow_up.id, "participation_id": joined.id, "joined": True}
    assert run.context["campaign_id"] == challenge_a.id
    # The join's own rewards came with it, and the other rule's filter kept it out.
    template = await CouponTemplate.get(campaign_id=follow_up.id)
    assert await _vouchers(client, me.id, template.id) == 1
    assert not await Participation.exists(campaign_id=elsewhere.id, customer_id=me.id)
    mine = await (await client.get("/api/v1/me/campaigns", headers=me.headers)).json()
    assert {c["campaign_id"] for c in mine["items"]} == {challenge_a.id, follow_up.id}


async def test_a_refused_enrolment_is_recorded_and_not_retried(client):
    ops = await _operator(client)
    till = await pos(client)
    goal = await challenge("purchases", 1)
    full = await make_campaign(participant_cap=1)
    rule = await _rule(client, ops, {"type": "campaign_completed"}, {"type": "enrol", "campaign_id": full.id})
    first, me = await shoppers(client, 2)
    assert (await client.post(f"/api/v1/campaigns/{full.id}/join", headers=first.headers)).status == 201
    assert (await client.post(f"/api/v1/campaigns/{goal.id}/join", headers=me.headers)).status == 201
    assert (await till.post(purchase("f-1", me, 100))).status == 201  # the purchase itself succeeds

    [run] = await _runs(client, ops, rule["id"], status="refused")
    assert run["refusal"] == "campaign_full" and run["outcome"]["participant_cap"] == 1
    assert run["attempts"] == 0 and run["finished_at"]
    # The worker does not take it up again, even when it is long due.
    await AutomationRun.filter(id=run["id"]).update(run_after=datetime.now(UTC) - timedelta(days=1))
    assert await automation.execute_due(client.server.app[JOURNEY]) == 0
    assert (await AutomationRun.get(id=run["id"])).status == "refused"
    assert not await Participation.exists(campaign_id=full.id, customer_id=me.id)
    counts = (await (await client.get(f"{RULES}/{rule['id']}", headers=ops)).json())["runs"]
    assert counts == {"pending": 0, "done": 0, "refused": 1, "failed": 0}


async def test_sold_out_is_recorded_once_and_not_retried(client):
    ops = await _operator(client)
    coupon = await _coupon(total_stock=1)
    rule = await _rule(client, ops, {"type": "registered"}, {"type": "issue_coupon", "coupon_id": coupon.id})
    lucky = (await _login(client, "o_auto_lucky"))["user"]["id"]
    late = (await _login(client, "o_auto_late"))["user"]["id"]
    assert await _vouchers(client, lucky, coupon.id) == 1
    [refused] = await _runs(client, ops, rule["id"], status="refused")
    assert refused["customer_id"] == late and refused["refusal"] == "sold_out"
    await AutomationRun.filter(id=refused["id"]).update(run_after=datetime.now(UTC) - timedelta(days=1))
    journey = client.server.app[JOURNEY]
    assert await automation.execute_due(journey) == 0
    await CouponTemplate.filter(id=coupon.id).update(total_stock=5)  # restocking does not revive it
    await journey.rewards.issue_pending()
    assert await _vouchers(client, late, coupon.id) == 0
    assert (await AutomationRun.get(id=refused["id"])).status == "refused"


async def test_inactive_for_days_fires_once_for_inactive_customers_only(client):
    ops = await _operator(client)
    coupon = await _coupon()
    rule = await _rule(
        client, ops, {"type": "inactive_for_days", "days": 30}, {"type": "issue_coupon", "coupon_id": coupon.id}
    )
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=90)
    sleeper, logged_in, shopped, newcomer, never_seen = await shoppers(client, 5, prefix="o_inactive")
    for who in (sleeper, logged_in, shopped, never_seen):
        await Customer.filter(id=who.id).update(created_at=long_ago, last_login_at=now - timedelta(days=40))
    await Customer.filter(id=never_seen.id).update(last_login_at=None)
    await Customer.filter(id=logged_in.id).update(last_login_at=now - timedelta(days=2))
    await CustomerDailyActivity.create(customer_id=shopped.id, day=(now - timedelta(days=3)).date(), purchases=1)
    await CustomerDailyActivity.create(customer_id=sleeper.id, day=(now - timedelta(days=45)).date(), visits=1)

    redis = client.server.app[REDIS]
    journey = client.server.app[JOURNEY]
    assert await workers.inactive_customers_pass(redis, 3600) is True
    assert await workers.inactive_customers_pass(redis, 3600) is False  # once per interval across processes
    # More passes, concurrently, as other processes would after the lock lapses: no second run.
    await asyncio.gather(*(automation_runs.record_inactive(datetime.now(UTC), batch=1) for _ in range(4)))
    await asyncio.gather(*(automation.execute_due(journey) for _ in range(3)))
    runs = await AutomationRun.filter(rule_id=rule["id"]).order_by("customer_id")
    assert [(r.customer_id, r.status) for r in runs] == [(sleeper.id, "done"), (never_seen.id, "done")]  # type: ignore[attr-defined]
    for who, expected in ((sleeper, 1), (never_seen, 1), (logged_in, 0), (shopped, 0), (newcomer, 0)):
        assert await _vouchers(client, who.id, coupon.id) == expected
    assert await RewardGrant.filter(template_id=coupon.id).count() == 2


async def test_voucher_expiring_fires_once_through_the_expiry_pass(client):
    ops = await _operator(client)
    reward = await _coupon()
    held = await _coupon()
    rule = await _rule(
        client, ops, {"type": "voucher_expiring", "hours": 48}, {"type": "issue_coupon", "coupon_id": reward.id}
    )
    soon, later = await shoppers(client, 2, prefix="o_expiring")
    now = datetime.now(UTC)
    for i, (who, hours) in enumerate(((soon, 20), (soon, 30), (later, 100))):
        await Voucher.create(
            claim_id=f"c-exp-{i}", template_id=held.id, campaign_id=held.campaign_id, customer_id=who.id,  # type: ignore[attr-defined]
            code=f"EXPIRING{i:08d}", face_value=500, valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(hours=hours), issued_at=now - timedelta(days=1),
        )  # fmt: skip
    redis = client.server.app[REDIS]
    assert await workers.voucher_expiry_pass(redis, 300, reminder_hours=72) is True
    await redis.delete("lock:voucher-expiry")
    assert await workers.voucher_expiry_pass(redis, 300, reminder_hours=72) is True  # a later pass
    await automation.execute_due(client.server.app[JOURNEY])
    [run] = await _runs(client, ops, rule["id"])
    assert run["customer_id"] == soon.id and run["status"] == "done"
    assert run["context"]["voucher_id"] == (await Voucher.get(claim_id="c-exp-0")).id
    assert await _vouchers(client, soon.id, reward.id) == 1
    assert await _vouchers(client, later.id, reward.id) == 0


async def test_disabled_rules_do_nothing(client):
    ops = await _operator(client)
    coupon = await _coupon()
    rule = await _rule(
        client, ops, {"type": "registered"}, {"type": "issue_coupon", "coupon_id": coupon.id}, enabled=False
    )
    me = (await _login(client, "o_auto_disabled"))["user"]["id"]
    assert await AutomationRun.all().count() == 0
    # A run recorded while enabled, disabled before it ran (a crash in between): nothing issued.
    path = f"{RULES}/{rule['id']}"
    assert (await client.patch(path, json={"enabled": True}, headers=ops)).status == 200
    run = await AutomationRun.create(
        rule_id=rule["id"], customer_id=me, trigger="registered", run_after=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert (await client.patch(path, json={"enabled": False}, headers=ops)).status == 200
    assert await automation.execute_due(client.server.app[JOURNEY]) == 1
    run = await AutomationRun.get(id=run.id)
    assert run.status == "refused" and run.refusal == "rule_disabled"
    assert await _vouchers(client, me, coupon.id) == 0


async def test_the_worker_finishes_runs_a_crash_left_pending(client_with):
    client = await client_with(run_workers=True, scheduler_interval=0.1)
    ops = await _operator(client)
    coupon = await _coupon()
    follow_up = await make_campaign()
    give = await _rule(client, ops, {"type": "registered"}, {"type": "issue_coupon", "coupon_id": coupon.id})
    enrol = await _rule(client, ops, {"type": "first_purchase"}, {"type": "enrol", "campaign_id": follow_up.id})
    [me] = await shoppers(client, 1)
    # Committed with what fired them, then the process died before executing them.
    due = datetime.now(UTC) - timedelta(seconds=1)
    for rule in (give, enrol):
        await AutomationRun.create(rule_id=rule["id"], customer_id=me.id, trigger="registered", run_after=due)
    deadline = asyncio.get_running_loop().time() + 10
    while await AutomationRun.filter(status="pending").exists():
        assert asyncio.get_running_loop().time() < deadline, "the automation worker did not run"
        await asyncio.sleep(0.05)
    assert await AutomationRun.filter(status="done").count() == 2
    assert await Participation.exists(campaign_id=follow_up.id, customer_id=me.id)
    # The claims worker (running too) writes the voucher.
    while not await Voucher.exists(customer_id=me.id, template_id=coupon.id):
        assert asyncio.get_running_loop().time() < deadline, "the voucher was not written"
        await asyncio.sleep(0.05)
    assert await Voucher.filter(customer_id=me.id, template_id=coupon.id).count() == 1


async def test_notify_queues_a_message_the_sender_delivers_within_allowances(client):
    """notify → a new_campaign message in the outbox (once per customer), delivered through
    WeChat only to a customer holding an allowance; a hidden campaign is refused."""
    ops = await _operator(client)
    till = await pos(client)
    follow_up = await make_campaign(content={"zh-CN": {"title": "会员日"}})
    hidden = await make_campaign(visibility="hidden")
    rule = await _rule(client, ops, {"type": "first_purchase"}, {"type": "notify", "campaign_id": follow_up.id})
    subscriber, other = await shoppers(client, 2)
    await subscribe(client, subscriber, NEW)
    for i, who in enumerate((subscriber, other)):
        assert (await till.post(purchase(f"e-notify-{i}", who, 800))).status == 201
        assert (await till.post(purchase(f"e-notify-{i}b", who, 800))).status == 201  # not a first purchase
    runs = {r["customer_id"]: r for r in await _runs(client, ops, rule["id"])}
    assert {runs[subscriber.id]["status"], runs[other.id]["status"]} == {"done"}
    report = await sender(client).run_once()
    assert (report.sent, report.skipped) == (1, 1)
    [message] = await sent_messages(client)
    assert message["touser"] == subscriber.openid and message["template_id"] == NEW
    assert message["data"]["thing1"]["value"] == "会员日"
    assert message["page"] == f"pages/campaign/detail?id={follow_up.id}"
    # A rule pointing at a hidden campaign is accepted (it may be shown later) and refused when it runs.
    rule2 = await _rule(client, ops, {"type": "first_purchase"}, {"type": "notify", "campaign_id": hidden.id})
    [late] = await shoppers(client, 1, prefix="o_late")
    assert (await till.post(purchase("e-notify-late", late, 800))).status == 201
    [run] = await _runs(client, ops, rule2["id"])
    assert (run["status"], run["refusal"]) == ("refused", "not_announced")
    # An unknown campaign is refused when the rule is written.
    resp = await client.post(
        "/api/v1/admin/automation-rules", headers=ops,
        json={"name": "x", "trigger": {"type": "registered"}, "action": {"type": "notify", "campaign_id": 999999}},
    )  # fmt: skip
    assert resp.status == 422 and (await error_of(resp))["code"] == "unknown_campaign"
