"""Integrations (POS, CRM) that post events, and how their requests are authenticated.

A request carries four headers:

- ``X-Api-Key``: the integration's key id (public, ``ik_...``)
- ``X-Timestamp``: Unix time in seconds, within ``integration_max_skew`` of the server
- ``X-Nonce``: 8-64 characters of ``A-Z a-z 0-9 _ -``, new for every request
- ``X-Signature``: lowercase hex HMAC-SHA256, keyed with the integration's secret, of
  ``<timestamp>.<nonce>.<raw body bytes>``

A nonce is accepted once per integration: it is remembered in Redis for twice the allowed
skew (older timestamps are refused anyway), so a captured request cannot be replayed. A
retry is a new request (new nonce, new signature); the event's external id makes it
idempotent.

The secret is needed in clear to verify an HMAC, so it cannot be stored hashed: it is
stored encrypted with AES-256-GCM under a key derived from SECRET_KEY (HMAC-SHA256 of a
fixed label), the key id as associated data. Changing SECRET_KEY makes stored secrets
unreadable: integrations must then be created again.

Rotation (``rotate``) issues a new secret under the same key id and keeps the previous
one, accepted until ``previous_secret_expires_at`` (INTEGRATION_SECRET_GRACE after the
rotation, 24 h by default) so the POS can switch without dropping events; a second
rotation replaces the kept one. A disabled integration (``set_active``) is refused
(invalid_api_key) whatever it signs with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.journey import Integration
from services.core import AnyRedis, audit, errors

_LABEL = b"wxcampaign integration secrets v1"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def _cipher(secret_key: str) -> AESGCM:
    return AESGCM(hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest())


def encrypt_secret(secret_key: str, key_id: str, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher(secret_key).encrypt(nonce, secret.encode(), key_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def decrypt_secret(secret_key: str, key_id: str, stored: str) -> str:
    raw = base64.b64decode(stored)
    return _cipher(secret_key).decrypt(raw[:12], raw[12:], key_id.encode()).decode()


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{nonce}.".encode() + body, hashlib.sha256).hexdigest()


async def create(name: str, secret_key: str, actor: audit.Actor) -> tuple[Integration, str]:
    """A new integration and its secret (returned once, never again). Audited (without
    the secret)."""
    key_id = "ik_" + secrets.token_hex(10)
    secret = "sk_" + secrets.token_urlsafe(32)
    if await Integration.filter(name=name).exists():
        raise errors.Conflict(f"an integration named {name!r} exists", details={"field": "name"})
    try:
        async with in_transaction():
            row = await Integration.create(
                name=name, key_id=key_id, secret_encrypted=encrypt_secret(secret_key, key_id, secret),
                created_by=actor.id or 0,
            )  # fmt: skip
            after = {"name": name, "key_id": key_id}
            await audit.record(actor, "integration.create", "integration", row.id, None, after)
    except IntegrityError:
        raise errors.Conflict(f"an integration named {name!r} exists", details={"field": "name"}) from None
    return row, secret


async def authenticate(
    redis: AnyRedis, secret_key: str, max_skew: int, key_id: str | None, timestamp: str | None,
    nonce: str | None, signature: str | None, body: bytes, now: float | None = None,
) -> Integration:  # fmt: skip
    """The integration that signed this request; raises invalid_api_key, stale_request,
    invalid_signature (bad or missing signature or nonce) or replayed_request."""
    if not key_id or len(key_id) > 40:
        raise errors.InvalidApiKey()
    integration = await Integration.get_or_none(key_id=key_id)
    if integration is None or not integration.is_active:
        raise errors.InvalidApiKey()
    now = time.time() if now is None else now
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise errors.StaleRequest("X-Timestamp must be Unix time in seconds")
    if abs(now - int(timestamp)) > max_skew:
        raise errors.StaleRequest(details={"server_time": int(now), "max_skew_seconds": max_skew})
    try:
        secrets_now = [decrypt_secret(secret_key, key_id, integration.secret_encrypted)]
        grace_ends = integration.previous_secret_expires_at
        if integration.previous_secret_encrypted and grace_ends is not None and now < grace_ends.timestamp():
            secrets_now.append(decrypt_secret(secret_key, key_id, integration.previous_secret_encrypted))
    except (InvalidTag, ValueError):
        raise errors.InvalidApiKey("the integration's secret cannot be read: create it again") from None
    if not nonce or not _NONCE.match(nonce):
        raise errors.InvalidSignature("X-Nonce must be 8-64 characters of A-Z a-z 0-9 _ -")
    given = (signature or "").strip().lower()
    # Every candidate is compared (no early exit): the time taken says nothing of which matched.
    matched = [hmac.compare_digest(sign(secret, timestamp, nonce, body), given) for secret in secrets_now]
    if not signature or not any(matched):
        raise errors.InvalidSignature()
    if not await redis.set(f"integration-nonce:{key_id}:{nonce}", "1", nx=True, ex=2 * max_skew):
        raise errors.ReplayedRequest()
    return integration


def _snapshot(row: Integration) -> dict[str, Any]:
    return {
        "name": row.name, "key_id": row.key_id, "is_active": row.is_active,
        "previous_secret_expires_at": (
            row.previous_secret_expires_at.isoformat() if row.previous_secret_expires_at else None
        ),
    }  # fmt: skip


async def set_active(integration_id: int, active: bool, actor: audit.Actor) -> Integration:
    """Enable or disable an integration (a disabled one's events are refused with
    invalid_api_key), audited (``integration.update``)."""
    async with in_transaction():
        row = await Integration.filter(id=integration_id).select_for_update().first()
        if row is None:
            raise errors.NotFound(f"no integration {integration_id}")
        before = _snapshot(row)
        row.is_active = active
        await row.save(update_fields=["is_active"])
        await audit.record(actor, "integration.update", "integration", row.id, before, _snapshot(row))
    return row


async def rotate(
    integration_id: int, secret_key: str, grace_seconds: int, actor: audit.Actor, now: datetime | None = None
) -> tuple[Integration, str]:
    """A new secret for the integration (returned once, never again); the current one stays
    valid for ``grace_seconds`` more. Audited (``integration.rotate``, without secrets)."""
    now = now or datetime.now(UTC)
    secret = "sk_" + secrets.token_urlsafe(32)
    async with in_transaction():
        row = await Integration.filter(id=integration_id).select_for_update().first()
        if row is None:
            raise errors.NotFound(f"no integration {integration_id}")
        before = _snapshot(row)
        row.previous_secret_encrypted = row.secret_encrypted
        row.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
        row.secret_encrypted = encrypt_secret(secret_key, row.key_id, secret)
        await row.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_secret_expires_at"])
        await audit.record(actor, "integration.rotate", "integration", row.id, before, _snapshot(row))
    return row, secret
