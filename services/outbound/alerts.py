"""Alert episodes: raised once while a condition holds, cleared when it no longer does.

An open episode holds its subject's key in ``open_key`` (unique), so raising twice, even
from two processes at once, opens one episode. Raising writes the ``alert.raised`` event in
the same transaction, and one ``alert`` subscribe message (the notifications outbox, sent
by ``services.notify``'s sender) to each active admin who opted in (``alert_wechat``) with a
WeChat openid bound that is a customer of the mini program (an admin who never opened it
holds no allowance for the template anyway). Clearing sends nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.admins import Admin
from models.customers import Customer
from models.notifications import Notification
from models.webhooks import Alert
from services.outbound.events import enqueue


async def raise_alert(
    *, rule: str, key: str, message: str, details: Mapping[str, Any] | None = None, campaign_id: int | None = None
) -> Alert | None:
    """Open an episode for ``key`` unless one is open; the new alert, or None (already open)."""
    if await Alert.filter(open_key=key).exists():
        return None
    now = datetime.now(UTC)
    try:
        async with in_transaction():
            alert = await Alert.create(
                rule=rule, key=key, open_key=key, campaign_id=campaign_id, status="raised", message=message[:300],
                details=dict(details or {}), raised_at=now,
            )  # fmt: skip
            await enqueue(
                "alert.raised",
                f"alert:{key}",
                {"alert_id": alert.id, "rule": rule, "key": key, "campaign_id": campaign_id, "message": alert.message,
                 "details": alert.details, "raised_at": now.isoformat()},
            )  # fmt: skip
            await _message_admins(alert)
            return alert
    except IntegrityError:
        return None  # raised concurrently


async def clear_alert(key: str) -> bool:
    """Close the open episode of ``key``; True when one was open."""
    return bool(await Alert.filter(open_key=key).update(open_key=None, status="cleared", cleared_at=datetime.now(UTC)))


async def _message_admins(alert: Alert) -> None:
    """Queue the alert's subscribe message to each admin who opted in: one per admin and
    episode (the key ``alert:<alert>:<admin>`` is unique). Precondition: inside the raising
    transaction, so the messages exist exactly when the episode does. The rows go straight
    into the outbox table (this package sits below ``services.notify``), shaped as
    ``services.notify.outbox.enqueue_many`` writes them."""
    bound = await Admin.filter(is_active=True, alert_wechat=True, wechat_openid__not_isnull=True).values_list(
        "id", "wechat_openid"
    )
    if not bound:
        return
    customer_of = dict(await Customer.filter(openid__in=[str(o) for _, o in bound]).values_list("openid", "id"))
    payload = {"alert_id": alert.id, "rule": alert.rule, "campaign_id": alert.campaign_id,
               "message": alert.message, "raised_at": alert.raised_at.isoformat()}  # fmt: skip
    rows = [
        Notification(
            key=f"alert:{alert.id}:{admin_id}",
            kind="alert",
            customer_id=customer_of[openid],
            payload=payload,
            next_attempt_at=alert.raised_at,
        )
        for admin_id, openid in bound
        if openid in customer_of
    ]
    if rows:
        await Notification.bulk_create(rows, ignore_conflicts=True)
