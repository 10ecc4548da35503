"""Webhooks out: a local receiver sees signed events in order per entity, survives its own
downtime, a killed server loses none; endpoints paused after failures with an alert; SSRF
refusals; the admin routes; events written in the transaction of their change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models.audit import AuditEntry
from models.webhooks import Alert, Webhook, WebhookDelivery, WebhookEvent
from server.keys import REDIS, SETTINGS
from services.core import errors
from services.journey import points
from services.privacy import RetentionPolicy, purge
from services.webhooks import endpoints
from services.webhooks.delivery import LOCK
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.wallet.fixtures import REDEEM, qr_payload, staff_login, store, vouchers
from tests.webhooks.fixtures import HOOKS, Receiver, passes, sender, subscribe, superadmin


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def _redeem(client, clerk, held) -> int:
    resp = await client.post(REDEEM, json={"payload": await qr_payload(client, held)}, headers=clerk)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def _until_delivered(hooks, rounds: int = 20) -> None:
    for _ in range(rounds):
        await hooks.run_once()
        if (
            not await WebhookDelivery.exclude(status="delivered").exists()
            and not await WebhookEvent.filter(fanned_out=False).exists()
        ):
            return
    raise AssertionError("deliveries still waiting")


async def test_signed_events_in_order_per_entity_survive_the_receivers_downtime(client):
    receiver = Receiver()  # not started: the endpoint is down (connection refused)
    auth = await superadmin(client)
    hook = await subscribe(client, receiver, auth)
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    manager = await staff_login(client, shop.id, "max", "manager")
    held = await vouchers(client, 3)
    rids = [await _redeem(client, clerk, h) for h in held]
    resp = await client.post(f"/api/v1/staff/redemptions/{rids[0]}/reverse", json={"reason": "oops"}, headers=manager)
    assert resp.status == 200, await resp.text()
    assert await WebhookEvent.all().count() == 7  # 3 issued, 3 redeemed, 1 reversed

    hooks = sender(client, pause_after=1000)
    reports = await passes(hooks, 3)
    assert receiver.seen == [] and all(r.failed == 3 for r in reports), reports  # one per voucher: the first
    log = await client.get(f"{HOOKS}/{hook['id']}/deliveries?limit=100", headers=auth)
    items = (await log.json())["items"]
    first_of_each = [d for d in items if d["event_type"] == "voucher.issued"]
    assert all(d["attempts"] == 3 and d["status"] == "pending" and d["error"] for d in first_of_each), items
    # An entity's later events wait for its earlier one: never attempted while it fails.
    assert all(d["attempts"] == 0 for d in items if d["event_type"] != "voucher.issued"), items

    await receiver.start()
    try:
        receiver.status = 503  # up, but answering errors
        await passes(hooks, 2)
        assert receiver.seen == [] and receiver.refused == 6
        log = await client.get(f"{HOOKS}/{hook['id']}/deliveries?limit=100", headers=auth)
        issued = [d for d in (await log.json())["items"] if d["event_type"] == "voucher.issued"]
        assert {d["response_status"] for d in issued} == {503} and issued[0]["response_body"] == "down for maintenance"
        receiver.status = 200
        await _until_delivered(hooks)
    finally:
        await receiver.stop()
    assert receiver.bad_signatures == 0
    assert len(receiver.seen) == 7 and len(set(receiver.ids())) == 7  # each once, each its own id
    first = held[0].claim_id
    assert receiver.of_entity("voucher_id", first) == ["voucher.issued", "voucher.redeemed", "voucher.reversed"]
    for h in held[1:]:
        assert receiver.of_entity("voucher_id", h.claim_id) == ["voucher.issued", "voucher.redeemed"]
    redeemed = next(e for e in receiver.seen if e["type"] == "voucher.redeemed" and e["data"]["voucher_id"] == first)
    assert redeemed["data"]["redemption_id"] == rids[0] and redeemed["data"]["store_id"] == shop.id
    reversed_ = next(e for e in receiver.seen if e["type"] == "voucher.reversed")
    assert reversed_["data"]["status"] == "available" and reversed_["data"]["reason"] == "oops"
    row = await Webhook.get(id=hook["id"])
    assert row.consecutive_failures == 0 and row.paused_at is None


async def test_a_killed_server_loses_no_event(client_with):
    client = await client_with()
    receiver = Receiver()
    await receiver.start()
    try:
        auth = await superadmin(client)
        await subscribe(client, receiver, auth)
        held = await vouchers(client, 2)
        hooks = sender(client)
        assert await hooks.fan_out() == 2
        # The process is killed mid-post: its delivery stays claimed, its lock stays held.
        victim = await WebhookDelivery.all().order_by("id").first()
        assert victim is not None
        await WebhookDelivery.filter(id=victim.id).update(
            status="delivering", attempts=1, claimed_at=datetime.now(UTC) - timedelta(hours=1)
        )
        # A new process on the same database and Redis; the dead one's lock still held for a moment.
        client = await client_with()
        await client.server.app[REDIS].set(LOCK, "the-dead-process", px=300)
        hooks = sender(client)
        assert (await hooks.run_once()).elected is False  # the dead holder's lock has not lapsed yet
        await asyncio.sleep(0.5)
        report = await hooks.run_once()
        assert report.elected and report.recovered == 1
        await _until_delivered(hooks)
    finally:
        await receiver.stop()
    assert sorted(e["data"]["voucher_id"] for e in receiver.seen) == sorted(h.claim_id for h in held)
    assert len(set(receiver.ids())) == 2 and receiver.bad_signatures == 0


async def test_a_dead_endpoint_is_paused_with_an_alert_and_resumes(client):
    dead, watcher = Receiver(status=500), Receiver()
    await dead.start()
    await watcher.start()
    try:
        auth = await superadmin(client)
        hook = await subscribe(client, dead, auth)
        await subscribe(client, watcher, auth, events=["alert.raised"])
        await vouchers(client, 1)
        hooks = sender(client, pause_after=3)
        await passes(hooks, 3)
        row = await Webhook.get(id=hook["id"])
        assert row.paused_at is not None and row.consecutive_failures == 3 and dead.refused == 3
        [alert] = await Alert.filter(rule="webhook_paused")
        assert alert.status == "raised" and alert.key == f"webhook_paused:{hook['id']}"
        await passes(hooks, 3)
        assert dead.refused == 3  # paused: nothing more is sent
        assert [e["type"] for e in watcher.seen] == ["alert.raised"]
        assert watcher.seen[0]["data"]["rule"] == "webhook_paused"
        answer = await (await client.get(f"{HOOKS}/{hook['id']}", headers=auth)).json()
        assert answer["paused_at"] is not None and answer["active"] is True

        dead.status = 200
        resp = await client.patch(f"{HOOKS}/{hook['id']}", json={"active": True}, headers=auth)
        assert resp.status == 200 and (await resp.json())["paused_at"] is None
        assert (await Alert.get(id=alert.id)).status == "cleared"
        await _until_delivered(hooks)
        assert sorted(e["type"] for e in dead.seen) == ["alert.raised", "voucher.issued"]
    finally:
        await dead.stop()
        await watcher.stop()


async def test_private_targets_are_refused_where_not_allowed():
    for url in (
        "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/", "http://192.168.0.5/x",
        "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
    ):  # fmt: skip
        with pytest.raises(errors.WebhookUrlRefused):
            await endpoints.check_url(url, allow_private=False)
        await endpoints.check_url(url, allow_private=True)
    for url in ("ftp://example.com/x", "http:///nohost", "javascript:alert(1)"):
        with pytest.raises(errors.WebhookUrlRefused):
            await endpoints.check_url(url, allow_private=True)
    await endpoints.check_url("https://93.184.216.34/hook", allow_private=False)  # a public address


async def test_a_delivery_to_a_private_address_is_refused_when_not_allowed(client):
    receiver = Receiver()
    await receiver.start()
    try:
        auth = await superadmin(client)
        hook = await subscribe(client, receiver, auth)  # allowed when saved: a test server
        await vouchers(client, 1)
        await passes(sender(client, allow_private=False), 1)  # as production delivers
        assert receiver.seen == []
        [delivery] = await WebhookDelivery.filter(webhook_id=hook["id"])
        assert delivery.status == "pending" and delivery.error is not None
        assert delivery.error.startswith("webhook_url_refused")
    finally:
        await receiver.stop()


async def test_admin_routes(client):
    auth = await superadmin(client)
    operator = bearer((await logged_in_admin(client, "operator"))["access_token"])
    body = {"url": "http://127.0.0.1:9/hook", "events": ["voucher.issued", "points.changed"]}
    assert (await client.post(HOOKS, json=body, headers=operator)).status == 403
    resp = await client.post(HOOKS, json={**body, "events": ["voucher.stolen"]}, headers=auth)
    assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"
    resp = await client.post(HOOKS, json={**body, "events": []}, headers=auth)
    assert resp.status == 422
    resp = await client.post(HOOKS, json={**body, "url": "file:///etc/passwd"}, headers=auth)
    assert resp.status == 422 and (await error_of(resp))["code"] == "webhook_url_refused"
    resp = await client.post(HOOKS, json=body, headers=auth)
    assert resp.status == 201
    created = await resp.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["voucher.issued", "points.changed"]
    stored = await Webhook.get(id=created["id"])
    assert created["secret"] not in stored.secret_encrypted
    secret_key = client.server.app[SETTINGS].secret_key
    assert endpoints.decrypt_secret(secret_key, stored.secret_encrypted) == created["secret"]
    one = await (await client.get(f"{HOOKS}/{created['id']}", headers=auth)).json()
    assert "secret" not in one and one["url"] == body["url"]
    listed = await (await client.get(HOOKS, headers=auth)).json()
    assert [w["id"] for w in listed["items"]] == [created["id"]] and "secret" not in listed["items"][0]
    resp = await client.patch(f"{HOOKS}/{created['id']}", json={"events": ["alert.raised"], "active": False},
                              headers=auth)  # fmt: skip
    assert resp.status == 200 and (await resp.json())["events"] == ["alert.raised"]
    assert (await client.get(f"{HOOKS}/999999", headers=auth)).status == 404
    assert (await client.get(f"{HOOKS}/abc", headers=auth)).status == 404
    assert (await client.patch(f"{HOOKS}/999999", json={"active": True}, headers=auth)).status == 404
    assert await AuditEntry.filter(entity_type="webhook", entity_id=created["id"]).count() == 2
    resp = await client.delete(f"{HOOKS}/{created['id']}", headers=auth)
    assert resp.status == 204 and not await Webhook.exists()
    assert (await client.delete(f"{HOOKS}/{created['id']}", headers=auth)).status == 404


async def test_redelivery_sends_the_same_event_id_again(client):
    receiver = Receiver()
    await receiver.start()
    try:
        auth = await superadmin(client)
        hook = await subscribe(client, receiver, auth)
        await vouchers(client, 1)
        hooks = sender(client)
        await _until_delivered(hooks)
        [delivery] = (await (await client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=auth)).json())["items"]
        assert delivery["status"] == "delivered" and delivery["response_status"] == 200
        path = f"{HOOKS}/{hook['id']}/deliveries/{delivery['id']}/redeliver"
        resp = await client.post(path, headers=auth)
        assert resp.status == 202
        again = await resp.json()
        assert again["id"] != delivery["id"] and again["event_id"] == delivery["event_id"]
        await _until_delivered(hooks)
        assert receiver.ids() == [delivery["event_id"], delivery["event_id"]]
        assert (await client.post(f"{HOOKS}/{hook['id']}/deliveries/999999/redeliver", headers=auth)).status == 404
    finally:
        await receiver.stop()


async def test_events_commit_with_their_change_and_only_when_subscribed(client):
    [held] = await vouchers(client, 1)  # no endpoint yet: nothing in the outbox
    assert not await WebhookEvent.exists()
    auth = await superadmin(client)
    await subscribe(client, Receiver(), auth, events=["points.changed", "campaign.state_changed"])
    row = await held.row()
    entry = await points.add(row.customer_id, 50, "test", "ref-1")
    assert entry is not None
    with pytest.raises(points.InsufficientPoints):  # rolled back: its event with it
        await points.add(row.customer_id, -500, "test", "ref-2")
    [event] = await WebhookEvent.all()
    assert event.type == "points.changed" and event.entity == f"customer:{row.customer_id}"
    assert event.payload["delta"] == 50 and event.payload["balance"] == 50
    resp = await client.post(f"/api/v1/admin/campaigns/{row.campaign_id}/pause", json={}, headers=auth)
    assert resp.status == 200, await resp.text()
    changed = await WebhookEvent.get(type="campaign.state_changed")
    assert changed.payload["from"] == "active" and changed.payload["to"] == "paused"
    assert changed.entity == f"campaign:{row.campaign_id}"


async def test_retention_purges_old_delivered_deliveries_and_their_events(client):
    hook = await subscribe(client, Receiver(), await superadmin(client))
    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    events = {}
    for label in ("old_delivered", "old_waiting", "new_delivered", "old_shared"):
        events[label] = await WebhookEvent.create(type="points.changed", entity=f"customer:{label}", fanned_out=True)
    await WebhookEvent.filter(id__in=[e.id for e in events.values() if e is not events["new_delivered"]]).update(
        created_at=old
    )
    rows = {
        "old_delivered": ("delivered", old),
        "old_waiting": ("pending", None),
        "new_delivered": ("delivered", now - timedelta(days=1)),
    }
    for label, (status, delivered_at) in rows.items():
        await WebhookDelivery.create(
            webhook_id=hook["id"], event_id=events[label].id, entity=events[label].entity, status=status,
            delivered_at=delivered_at, next_attempt_at=old,
        )  # fmt: skip
    # One event to two deliveries: one old delivered, one redelivered lately (kept, so is the event).
    for delivered_at in (old, now):
        await WebhookDelivery.create(
            webhook_id=hook["id"], event_id=events["old_shared"].id, entity="customer:old_shared", status="delivered",
            delivered_at=delivered_at, next_attempt_at=old,
        )  # fmt: skip
    report = await purge(client.server.app[REDIS], RetentionPolicy(outbox_days=30, batch=2))
    assert report.counts["webhook_deliveries"] == 2 and report.counts["webhook_events"] == 1
    left = {e.id for e in await WebhookEvent.all()}
    assert left == {events[k].id for k in ("old_waiting", "new_delivered", "old_shared")}
    assert await WebhookDelivery.filter(event_id=events["old_shared"].id).count() == 1
