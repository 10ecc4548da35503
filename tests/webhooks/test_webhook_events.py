"""Each event type from the code that commits its change, under concurrency: one
``participation.completed`` however many events complete the goal at once, a customer's
``points.changed`` in ledger order, one ``voucher.redeemed`` per redemption written by the
till's batched writers."""

from __future__ import annotations

import asyncio

import pytest

from models.journey import PointsEntry
from models.participations import Participation
from models.redemptions import Redemption
from models.webhooks import WebhookEvent
from tests.helpers import cheap_password_hashing
from tests.journey.fixtures import challenge, drain_claims, pos, purchase, shoppers
from tests.wallet.fixtures import REDEEM, qr_payload, staff_login, store, vouchers
from tests.webhooks.fixtures import Receiver, sender, subscribe, superadmin
from tests.webhooks.test_webhooks import _until_delivered


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def test_a_completion_under_concurrent_events_is_one_event_and_points_arrive_in_ledger_order(client):
    receiver = Receiver()
    await receiver.start()
    try:
        await subscribe(client, receiver, await superadmin(client))
        campaign = await challenge("purchases", 2, reward_points=100)
        [me] = await shoppers(client, 1)
        resp = await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)
        assert resp.status == 201, await resp.text()
        till = await pos(client)
        assert (await till.post(purchase("first", me, 100))).status == 201
        resps = await asyncio.gather(*(till.post(purchase(f"p{i}", me, 100)) for i in range(10)))
        assert [r.status for r in resps] == [201] * 10
        await drain_claims(client)
        await _until_delivered(sender(client))
    finally:
        await receiver.stop()
    participation = await Participation.get(campaign_id=campaign.id, customer_id=me.id)
    [completed] = [e for e in receiver.seen if e["type"] == "participation.completed"]
    assert completed["data"]["participation_id"] == participation.id and completed["data"]["customer_id"] == me.id
    assert await WebhookEvent.filter(type="participation.completed").count() == 1
    entries = [e.id for e in await PointsEntry.filter(customer_id=me.id).order_by("id")]
    changed = [e["data"]["entry_id"] for e in receiver.seen if e["type"] == "points.changed"]
    assert changed == entries and len(entries) >= 2  # every ledger line, in the ledger's order
    assert receiver.bad_signatures == 0


async def test_concurrent_redemptions_each_write_one_event(client):
    await subscribe(client, Receiver(), await superadmin(client), events=["voucher.redeemed"])
    shop = await store()
    clerks = [await staff_login(client, shop.id, "clara"), await staff_login(client, shop.id, "carl")]
    held = await vouchers(client, 40)
    payloads = [await qr_payload(client, h) for h in held]
    # All at once from two clerks: the group commit writes them in batches.
    resps = await asyncio.gather(
        *(client.post(REDEEM, json={"payload": p}, headers=clerks[i % 2]) for i, p in enumerate(payloads))
    )
    statuses = sorted(r.status for r in resps)
    assert statuses.count(201) == 40, (statuses, [await r.text() for r in resps if r.status not in (201, 409)])
    events = await WebhookEvent.filter(type="voucher.redeemed")
    assert len(events) == 40
    assert sorted(e.payload["voucher_id"] for e in events) == sorted(h.claim_id for h in held)
    redemptions = {r.id: r for r in await Redemption.all()}
    for event in events:
        redemption = redemptions[event.payload["redemption_id"]]
        assert event.entity == f"voucher:{event.payload['voucher_id']}"
        assert event.payload["customer_id"] == redemption.customer_id and event.payload["store_id"] == shop.id
