"""Alert episodes: raised once while a condition holds, cleared when it no longer does.

An open episode holds its subject's key in ``open_key`` (unique), so raising twice, even
from two processes at once, opens one episode. Raising writes the ``alert.raised`` event in
the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

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
            return alert
    except IntegrityError:
        return None  # raised concurrently


async def clear_alert(key: str) -> bool:
    """Close the open episode of ``key``; True when one was open."""
    return bool(await Alert.filter(open_key=key).update(open_key=None, status="cleared", cleared_at=datetime.now(UTC)))
