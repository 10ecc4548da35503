"""Webhook endpoints: created by admins with a URL and the event types they want, a signing
secret generated here (returned once, stored encrypted: it is needed in clear to sign).

Only addresses an admin configured are ever called, and where the server runs in
production (``allow_private`` false) a URL whose host resolves to a private, loopback,
link-local, multicast, reserved or unspecified address is refused, when saved and again
before each delivery (a name may be re-pointed after it was saved). Development and test
servers allow them, so tests can run a receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tortoise.transactions import in_transaction

from models.webhooks import WEBHOOK_EVENTS, Webhook, WebhookDelivery
from services import outbound
from services.core import audit, errors

_LABEL = b"wxcampaign webhook secrets v1"


def _cipher(secret_key: str) -> AESGCM:
    return AESGCM(hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest())


def encrypt_secret(secret_key: str, secret: str) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _cipher(secret_key).encrypt(nonce, secret.encode(), b"webhook")).decode()


def decrypt_secret(secret_key: str, stored: str) -> str:
    raw = base64.b64decode(stored)
    return _cipher(secret_key).decrypt(raw[:12], raw[12:], b"webhook").decode()


def events_column(events: Sequence[str]) -> str:
    """The subscribed types as stored: between commas, so ``LIKE '%,type,%'`` matches one."""
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown or not events:
        raise errors.ValidationFailed(
            f"unknown event types: {', '.join(unknown)}" if unknown else "subscribe to at least one event type",
            details={"errors": [{"field": "events", "message": f"one or more of {', '.join(WEBHOOK_EVENTS)}",
                                 "type": "value_error"}]},
        )  # fmt: skip
    return "," + ",".join(t for t in WEBHOOK_EVENTS if t in set(events)) + ","


def events_of(row: Webhook) -> list[str]:
    return [t for t in row.events.split(",") if t]


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified or not ip.is_global
    )  # fmt: skip


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise WebhookUrlRefused unless ``url`` is http(s) with a host and, when private
    targets are not allowed, every address the host resolves to is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.WebhookUrlRefused("the webhook URL must be an http:// or https:// URL with a host")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        raise errors.WebhookUrlRefused(
            "the webhook URL's host does not resolve", details={"host": parts.hostname}
        ) from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses or any(_refused_address(a) for a in addresses):
        raise errors.WebhookUrlRefused(
            "the webhook URL resolves to a private, loopback or link-local address (refused in production)",
            details={"host": parts.hostname, "addresses": addresses},
        )


async def create(
    *, url: str, events: Sequence[str], active: bool, secret_key: str, allow_private: bool, actor: audit.Actor
) -> tuple[Webhook, str]:
    """A new endpoint and its signing secret (returned this once). Audited without the secret."""
    column = events_column(events)
    await check_url(url, allow_private=allow_private)
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with in_transaction():
        row = await Webhook.create(
            url=url, events=column, secret_encrypted=encrypt_secret(secret_key, secret), active=active,
            created_by=actor.id or 0,
        )  # fmt: skip
        await audit.record(actor, "webhook.create", "webhook", row.id, None, {"url": url, "events": events_of(row)})
    return row, secret


async def get(webhook_id: int) -> Webhook:
    row = await Webhook.get_or_none(id=webhook_id)
    if row is None:
        raise errors.NotFound("no such webhook")
    return row


async def update(
    webhook_id: int, *, url: str | None, events: Sequence[str] | None, active: bool | None, allow_private: bool,
    actor: audit.Actor,
) -> Webhook:  # fmt: skip
    """Change an endpoint. ``active: true`` on a paused endpoint resumes it: its failures
    count from zero again and its waiting deliveries are tried at once."""
    row = await get(webhook_id)
    before = {"url": row.url, "events": events_of(row), "active": row.active, "paused": row.paused_at is not None}
    values: dict[str, object] = {}
    if url is not None:
        await check_url(url, allow_private=allow_private)
        values["url"] = url
    if events is not None:
        values["events"] = events_column(events)
    if active is not None:
        values["active"] = active
        if active:
            values["paused_at"] = None
            values["consecutive_failures"] = 0
    async with in_transaction():
        if values:
            await Webhook.filter(id=row.id).update(**values)
        if active:
            await WebhookDelivery.filter(webhook_id=row.id, status="pending").update(next_attempt_at=datetime.now(UTC))
            await outbound.clear_alert(f"webhook_paused:{row.id}")
        row = await get(webhook_id)
        after = {"url": row.url, "events": events_of(row), "active": row.active, "paused": row.paused_at is not None}
        await audit.record(actor, "webhook.update", "webhook", row.id, before, after)
    return row


async def delete(webhook_id: int, actor: audit.Actor) -> None:
    """Remove an endpoint with its delivery log (nothing more is sent to it)."""
    row = await get(webhook_id)
    async with in_transaction():
        await WebhookDelivery.filter(webhook_id=row.id).delete()
        await Webhook.filter(id=row.id).delete()
        await outbound.clear_alert(f"webhook_paused:{row.id}")
        await audit.record(actor, "webhook.delete", "webhook", row.id, {"url": row.url}, None)


async def redeliver(webhook_id: int, delivery_id: int, actor: audit.Actor) -> WebhookDelivery:
    """Send a delivery's event again: a waiting one is tried at once, a delivered one gets
    a new delivery of the same event (same event id, so the receiver can dedupe)."""
    row = await get(webhook_id)
    delivery = await WebhookDelivery.get_or_none(id=delivery_id, webhook_id=row.id)
    if delivery is None:
        raise errors.NotFound("no such delivery")
    now = datetime.now(UTC)
    async with in_transaction():
        if delivery.status == "delivered":
            delivery = await WebhookDelivery.create(
                webhook_id=row.id, event_id=delivery.event_id, entity=delivery.entity, next_attempt_at=now
            )
        else:
            await WebhookDelivery.filter(id=delivery.id).update(next_attempt_at=now)
            delivery = await WebhookDelivery.get(id=delivery.id)
        await audit.record(actor, "webhook.redeliver", "webhook", row.id, None, {"delivery_id": delivery.id})
    return delivery
