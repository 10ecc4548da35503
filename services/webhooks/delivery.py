"""Delivering the outbox: one elected process at a time posts each event to each endpoint
that subscribes to it, signed, retried, in order per entity.

A pass (``WebhookSender.run_once``), under the Redis lock ``lock:webhooks`` (one process
delivers at a time: that is what keeps an entity's events in order across processes; the
lock is renewed after each delivery and lapses if its holder dies):

1. **Recover**: a delivery left ``delivering`` longer than ``stale_after_seconds`` (its
   process died mid-post) goes back to ``pending``: at least once, never lost.
2. **Fan out**: each outbox event not fanned out yet becomes one ``pending`` delivery per
   active endpoint subscribed to its type, and is marked fanned out, in one transaction.
3. **Deliver** due deliveries in event id order. One whose endpoint has an earlier event
   of the same entity not delivered yet waits (event n+1 never arrives before event n).
   The body is ``{"id", "type", "created_at", "data"}`` (``id`` is the event's: stable over
   retries and redeliveries, the receiver dedupes on it), posted with
   ``X-Webhook-Id``, ``X-Webhook-Event``, ``X-Webhook-Timestamp`` (Unix seconds) and
   ``X-Webhook-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the
   endpoint's secret>``. Redirects are not followed. A 2xx answer is delivered; anything
   else (or no answer within the timeout) is retried after
   ``retry_base_seconds * 2^(attempt-1)`` (at most ``retry_max_seconds``), times a random
   factor in [0.5, 1.5) so endpoints that fail together do not retry together.
   After ``pause_after`` consecutive failures the endpoint is paused (nothing is sent to
   it, its events keep queueing) and an ``alert.raised`` (rule ``webhook_paused``) is
   written; an admin resumes it (PATCH ``active: true``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.webhooks import Webhook, WebhookDelivery, WebhookEvent
from services import outbound
from services.core import AnyRedis, AppError, run_to_end
from services.webhooks.endpoints import check_url, decrypt_secret

log = logging.getLogger("wxcampaign.webhooks")

LOCK = "lock:webhooks"
# Renew or release the lock only while we hold it (it may have lapsed and passed on).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    #: Consecutive failures after which an endpoint is paused.
    pause_after: int = 20
    batch: int = 200
    #: A delivery claimed longer ago than this was left by a dead process.
    stale_after_seconds: float = 120.0
    #: Private, loopback and link-local targets allowed (development and test only).
    allow_private: bool = False


@dataclass
class DeliveryReport:
    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    recovered: int = 0
    paused: int = 0
    elected: bool = True


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``v1=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def body_of(event: WebhookEvent) -> bytes:
    return json.dumps(
        {"id": str(event.id), "type": event.type, "created_at": event.created_at.isoformat(), "data": event.payload},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


class WebhookSender:
    """Delivers the outbox. One per process; the Redis lock elects who delivers."""

    def __init__(self, redis: AnyRedis, session: aiohttp.ClientSession, secret_key: str, policy: DeliveryPolicy):
        self.redis = redis
        self.session = session
        self.secret_key = secret_key
        self.policy = policy
        self._hold_ms = int(max(30.0, policy.timeout_seconds * 3) * 1000)

    async def run_once(self) -> DeliveryReport:
        token = secrets.token_hex(8)
        if not await self.redis.set(LOCK, token, nx=True, px=self._hold_ms):
            return DeliveryReport(elected=False)
        try:
            report = DeliveryReport()
            report.recovered = await self.recover_stale()
            report.fanned_out = await run_to_end(self.fan_out())
            await self._deliver_due(report, token)
            return report
        finally:
            await self.redis.eval(_RELEASE, 1, LOCK, token)

    async def recover_stale(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.policy.stale_after_seconds)
        return await WebhookDelivery.filter(status="delivering", claimed_at__lt=cutoff).update(
            status="pending", claimed_at=None
        )

    async def fan_out(self) -> int:
        """Step 2: deliveries for the events not fanned out yet; how many events."""
        events = await WebhookEvent.filter(fanned_out=False).order_by("id").limit(self.policy.batch)
        if not events:
            return 0
        hooks = await Webhook.filter(active=True).values_list("id", "events")
        now = datetime.now(UTC)
        done = 0
        async with in_transaction():
            for event in events:
                if not await WebhookEvent.filter(id=event.id, fanned_out=False).update(fanned_out=True):
                    continue  # fanned out meanwhile (a previous holder of the lock)
                done += 1
                rows = [
                    WebhookDelivery(webhook_id=hook_id, event_id=event.id, entity=event.entity, next_attempt_at=now)
                    for hook_id, types in hooks
                    if f",{event.type}," in str(types)
                ]
                if rows:
                    await WebhookDelivery.bulk_create(rows)
        return done

    async def _deliver_due(self, report: DeliveryReport, token: str) -> None:
        now = datetime.now(UTC)
        due = (
            await WebhookDelivery.filter(status="pending", next_attempt_at__lte=now)
            .order_by("event_id", "id")
            .limit(self.policy.batch)
        )
        hooks = {h.id: h for h in await Webhook.filter(id__in={d.webhook_id for d in due}, active=True, paused_at=None)}
        blocked: set[tuple[int, str]] = set()
        for delivery in due:
            hook = hooks.get(delivery.webhook_id)
            lane = (delivery.webhook_id, delivery.entity)
            if hook is None or lane in blocked:
                continue
            earlier = (
                await WebhookDelivery.filter(
                    webhook_id=delivery.webhook_id, entity=delivery.entity, event_id__lt=delivery.event_id
                )
                .exclude(status="delivered")
                .exists()
            )
            if earlier:
                blocked.add(lane)
                report.waiting += 1
                continue
            outcome = await run_to_end(self._deliver(delivery, hook))
            await self.redis.eval(_RENEW, 1, LOCK, token, self._hold_ms)
            if outcome == "delivered":
                report.delivered += 1
            elif outcome is not None:
                report.failed += 1
                blocked.add(lane)
                if outcome == "paused":
                    report.paused += 1
                    hooks.pop(hook.id, None)

    async def _deliver(self, delivery: WebhookDelivery, hook: Webhook) -> str | None:
        """One attempt: ``delivered``, ``failed`` (to be retried), ``paused`` (failed, and the
        endpoint is now paused), or None (another process claimed it)."""
        now = datetime.now(UTC)
        claimed = await WebhookDelivery.filter(id=delivery.id, status="pending").update(
            status="delivering", claimed_at=now, attempts=F("attempts") + 1
        )
        if not claimed:
            return None
        event = await WebhookEvent.get(id=delivery.event_id)
        body = body_of(event)
        status: int | None = None
        answer: str | None = None
        error: str | None = None
        try:
            if not self.policy.allow_private:
                await check_url(hook.url, allow_private=False)
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "wxcampaign-webhooks/1",
                "X-Webhook-Id": str(event.id),
                "X-Webhook-Event": event.type,
                "X-Webhook-Timestamp": timestamp,
                "X-Webhook-Signature": sign(decrypt_secret(self.secret_key, hook.secret_encrypted), timestamp, body),
            }
            timeout = aiohttp.ClientTimeout(total=self.policy.timeout_seconds)
            async with self.session.post(
                hook.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                answer = (await response.content.read(500)).decode("utf-8", "replace")
        except AppError as exc:
            error = f"{exc.code}: {exc.message}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        if status is not None and 200 <= status < 300:
            async with in_transaction():
                await WebhookDelivery.filter(id=delivery.id).update(
                    status="delivered", delivered_at=datetime.now(UTC), response_status=status, response_body=answer,
                    error=None,
                )  # fmt: skip
                await Webhook.filter(id=hook.id).update(consecutive_failures=0)
            return "delivered"
        if error is None:
            error = f"HTTP {status}"
        attempts = delivery.attempts + 1
        delay = min(self.policy.retry_max_seconds, self.policy.retry_base_seconds * 2 ** (attempts - 1))
        delay *= random.uniform(0.5, 1.5)  # jitter
        async with in_transaction():
            await WebhookDelivery.filter(id=delivery.id).update(
                status="pending", claimed_at=None, response_status=status, response_body=answer, error=error[:300],
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
            )  # fmt: skip
            await Webhook.filter(id=hook.id).update(consecutive_failures=F("consecutive_failures") + 1)
            failures = (await Webhook.get(id=hook.id)).consecutive_failures
            if failures >= self.policy.pause_after:
                paused = await Webhook.filter(id=hook.id, paused_at=None).update(paused_at=datetime.now(UTC))
                if paused:
                    await outbound.raise_alert(
                        rule="webhook_paused", key=f"webhook_paused:{hook.id}",
                        message=f"webhook {hook.id} paused after {failures} consecutive failed deliveries",
                        details={"webhook_id": hook.id, "url": hook.url, "last_error": error[:300]},
                    )  # fmt: skip
                    log.warning("webhook %d paused after %d consecutive failures", hook.id, failures)
                    return "paused"
        return "failed"


async def deliver_forever(sender: WebhookSender, interval: float) -> None:
    """Run passes until cancelled; a cancel lets the delivery in hand finish first."""
    me = asyncio.current_task()
    while me is None or not me.cancelling():
        try:
            report = await sender.run_once()
            if report.delivered or report.failed or report.recovered or report.paused:
                log.info(
                    "webhooks: %d delivered, %d failed, %d waiting, %d recovered, %d endpoints paused",
                    report.delivered, report.failed, report.waiting, report.recovered, report.paused,
                )  # fmt: skip
        except Exception:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("webhooks pass failed")
        await asyncio.sleep(interval)
    raise asyncio.CancelledError
