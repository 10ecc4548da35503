"""The webhook outbox (``webhook_events``): one row per event, written by the code that
commits the change, in its transaction.

An event is written only when an active endpoint subscribes to its type at that moment
(one indexed read of the small ``webhooks`` table per transaction): with no webhook
configured the outbox stays empty and the hot paths pay one cheap query. An endpoint
created later receives the events written after its creation, not before.

``entity`` names what changed (``voucher:<voucher id>``, ``campaign:<id>``,
``participation:<id>``, ``customer:<id>`` for points, ``alert:<key>``): deliveries of one
entity's events to one endpoint go in event id order (services.webhooks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from models.webhooks import WEBHOOK_EVENTS, Webhook, WebhookEvent

EVENT_TYPES = WEBHOOK_EVENTS


async def subscribed_types() -> set[str]:
    """The event types at least one active endpoint subscribes to (paused ones included:
    their events wait for them)."""
    types: set[str] = set()
    for events in await Webhook.filter(active=True).values_list("events", flat=True):
        types.update(t for t in str(events).split(",") if t)
    return types


async def enqueue_many(events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
    """Write (type, entity, payload) events to the outbox, those subscribed to; how many were
    written. Precondition: called inside the transaction of the change (tortoise's current
    transaction is used), so the events commit or roll back with it."""
    rows = list(events)
    if not rows:
        return 0
    wanted = await subscribed_types()
    now = datetime.now(UTC)
    new = [
        WebhookEvent(type=kind, entity=entity, payload=dict(payload), created_at=now)
        for kind, entity, payload in rows
        if kind in wanted
    ]
    if new:
        await WebhookEvent.bulk_create(new)
    return len(new)


async def enqueue(kind: str, entity: str, payload: Mapping[str, Any]) -> bool:
    """One event (see ``enqueue_many``); True when written."""
    return await enqueue_many([(kind, entity, payload)]) == 1


def voucher_payload(
    *, claim_id: str, campaign_id: int, template_id: int, customer_id: int, face_value: int, **more: Any
) -> dict[str, Any]:
    """The fields every voucher event carries (``voucher_id`` is the public id: the claim id)."""
    return {
        "voucher_id": claim_id, "campaign_id": campaign_id, "coupon_id": template_id,
        "customer_id": customer_id, "face_value": face_value, **more,
    }  # fmt: skip
