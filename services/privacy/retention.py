"""Retention: data kept only as long as it serves, purged by age in bounded batches.

- Tracking: the per-campaign-day HyperLogLogs of reach and clickers (the only tracking
  data derived from customer ids) are deleted ``tracking_days`` after their day. The
  per-day counts (impressions, clicks, per section) name nobody and keep their own
  lifetime (services/analytics/tracking.py, TRACKING_TTL_DAYS).
- Outbox: subscribe messages that finished (sent, failed, skipped, unknown) and voucher
  reminders that were sent, ``outbox_days`` after they finished.
- Webhooks: deliveries delivered ``outbox_days`` ago, then outbox events older than that
  left with no delivery (every endpoint got them, or none subscribed).
- Idempotency: the ``Idempotency-Key`` of redemptions is cleared ``idempotency_days``
  after the redemption (a retry that late is a new request; the order reference still
  recognises the same basket). Grab idempotency records are Redis keys with their own
  24-hour lifetime (services/stock/gate.py).
- Integration nonces are Redis keys that expire at the end of their replay window (twice
  INTEGRATION_MAX_SKEW, services/activity/integrations.py): nothing is left to purge.

Each batch is one statement over at most ``batch`` rows (short transactions, no long
lock on a hot table); the pass runs in one process per interval (server/workers.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from tortoise.expressions import Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.notifications import Notification
from models.redemptions import Redemption, VoucherReminder
from models.webhooks import WebhookDelivery, WebhookEvent
from services.core import AnyRedis, column, text

#: Notification statuses after which a row is never touched again.
FINISHED = ("sent", "failed", "skipped", "unknown")
M = TypeVar("M", bound=Model)
_TRACKING_HLL = re.compile(r"^\{cmp:\d+\}:(?:reach|clickers):(\d{8})$")


@dataclass(frozen=True)
class RetentionPolicy:
    tracking_days: int = 90
    outbox_days: int = 30
    idempotency_days: int = 7
    batch: int = 1000


@dataclass
class PurgeReport:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def _delete_in_batches(model: type[M], query: QuerySet[M], batch: int) -> int:
    total = 0
    while True:
        ids = await column(query.order_by("id").limit(batch), "id")
        if not ids:
            return total
        total += await model.filter(id__in=ids).delete()
        if len(ids) < batch:
            return total


async def _clear_idempotency_keys(cutoff: datetime, batch: int) -> int:
    total = 0
    while True:
        expired = Redemption.filter(idempotency_key__isnull=False, created_at__lt=cutoff)
        ids = await column(expired.order_by("id").limit(batch), "id")
        if not ids:
            return total
        total += await Redemption.filter(id__in=ids).update(idempotency_key=None)
        if len(ids) < batch:
            return total


async def _purge_tracking(redis: AnyRedis, before: date, batch: int) -> int:
    doomed: list[str] = []
    total = 0
    async for raw in redis.scan_iter(match="{cmp:*}:*", count=1000):
        key = text(raw)
        found = _TRACKING_HLL.match(key)
        if found and datetime.strptime(found.group(1), "%Y%m%d").date() < before:
            doomed.append(key)
        if len(doomed) >= batch:
            total += await _delete_keys(redis, doomed)
            doomed = []
    return total + await _delete_keys(redis, doomed)


async def _delete_keys(redis: AnyRedis, keys: list[str]) -> int:
    if not keys:
        return 0
    async with redis.pipeline(transaction=False) as pipe:  # one key a command: Cluster slots differ
        for key in keys:
            pipe.delete(key)
        return sum(int(n) for n in await pipe.execute())


async def purge(redis: AnyRedis, policy: RetentionPolicy, now: datetime | None = None) -> PurgeReport:
    """One retention pass over every kind of data (module docstring)."""
    at = now or datetime.now(UTC)
    report = PurgeReport()
    outbox_cutoff = at - timedelta(days=policy.outbox_days)
    report.add(
        "notifications",
        await _delete_in_batches(
            Notification, Notification.filter(status__in=FINISHED, finished_at__lt=outbox_cutoff), policy.batch
        ),
    )
    report.add(
        "voucher_reminders",
        await _delete_in_batches(VoucherReminder, VoucherReminder.filter(sent_at__lt=outbox_cutoff), policy.batch),
    )
    report.add(
        "webhook_deliveries",
        await _delete_in_batches(
            WebhookDelivery, WebhookDelivery.filter(status="delivered", delivered_at__lt=outbox_cutoff), policy.batch
        ),
    )
    waiting = Subquery(WebhookDelivery.all().values("event_id"))
    report.add(
        "webhook_events",
        await _delete_in_batches(
            WebhookEvent,
            WebhookEvent.filter(fanned_out=True, created_at__lt=outbox_cutoff).exclude(id__in=waiting),
            policy.batch,
        ),
    )
    report.add(
        "idempotency_keys", await _clear_idempotency_keys(at - timedelta(days=policy.idempotency_days), policy.batch)
    )
    report.add(
        "tracking_keys",
        await _purge_tracking(redis, (at - timedelta(days=policy.tracking_days)).date(), policy.batch),
    )
    return report
