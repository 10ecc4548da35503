"""The voucher expiry job: flips the stored state of vouchers past ``valid_until``, queues
"expiring soon" reminders, and records the runs of ``voucher_expiring`` automation rules
(services.automation.runs) for the automation worker.

``voucher_reminders`` records which vouchers are due a reminder (once per voucher and
kind; its ``sent_at`` is set when the message went out). The same transaction that writes
a reminder puts its message in the notifications outbox (key
``voucher_expiring:<voucher>``, ``services.notify.outbox``), so a reminder never exists
without its message; the notifications sender delivers it (or records why not).

Reads never depend on it (``services.wallet.effective_status`` makes expiry exact); it
keeps stored states honest for reports and the audience rule ``holds_coupon``. Each step
is idempotent (a conditional UPDATE; an insert that skips vouchers already reminded), so
running it twice, or in two processes at once, is harmless: the lock only saves work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from models.campaigns import CouponTemplate
from models.redemptions import REMINDER_KIND, VoucherReminder
from models.vouchers import Voucher
from services.automation import runs as automation_runs
from services.core import AnyRedis
from services.notify import outbox as notify_outbox

LOCK_KEY = "lock:voucher-expiry"
BATCH = 1000


@dataclass(frozen=True)
class ExpiryReport:
    expired: int
    reminders: int
    automation_runs: int = 0


async def expire_due(now: datetime, batch: int = BATCH) -> int:
    """Mark available vouchers whose valid_until passed as expired, in batches."""
    total = 0
    while True:
        ids = await Voucher.filter(status="available", valid_until__lte=now).limit(batch).values_list("id", flat=True)
        if not ids:
            return total
        total += await Voucher.filter(id__in=list(ids), status="available").update(status="expired")
        if len(ids) < batch:
            return total


async def queue_reminders(now: datetime, within: timedelta, batch: int = BATCH) -> int:
    """One "expiring soon" reminder per available voucher whose valid_until falls within
    ``within`` from now, never twice for one voucher."""
    total = 0
    while True:
        reminded = VoucherReminder.filter(kind=REMINDER_KIND).values("voucher_id")
        rows = (
            await Voucher.filter(status="available", valid_until__gt=now, valid_until__lte=now + within)
            .exclude(id__in=Subquery(reminded))
            .limit(batch)
            .values_list("id", "customer_id", "valid_until", "template_id", "campaign_id")
        )
        if not rows:
            return total
        templates = await CouponTemplate.filter(id__in={r[3] for r in rows}).values_list(
            "id", "title", "campaign__default_language"
        )
        titles = {t: notify_outbox.title_of({}, lang, titles=title or {}) for t, title, lang in templates}
        # Every language the coupon has, for the customer's (services/notify/languages.py).
        translations = {t: ({k: str(v) for k, v in (title or {}).items() if v}, lang) for t, title, lang in templates}
        async with in_transaction():
            reminders = [
                VoucherReminder(voucher_id=v, customer_id=c, kind=REMINDER_KIND, valid_until=u) for v, c, u, *_ in rows
            ]
            await VoucherReminder.bulk_create(reminders, ignore_conflicts=True)
            messages = []
            for v, c, u, t, cmp in rows:
                coupon_titles, default_language = translations.get(t, ({}, "zh-CN"))
                payload = {"voucher_id": v, "campaign_id": cmp, "coupon_title": titles.get(t, ""),
                           "valid_until": u.isoformat(), "coupon_titles": coupon_titles,
                           "default_language": default_language}  # fmt: skip
                messages.append((f"voucher_expiring:{v}", "voucher_expiring", c, payload))
            await notify_outbox.enqueue_many(messages)
        total += len(rows)
        if len(rows) < batch:
            return total


async def expiry_pass(redis: AnyRedis, interval_seconds: int, reminder_hours: int) -> ExpiryReport | None:
    """Run once per ``interval_seconds`` across all processes (the first to take the lock
    runs; the lock is left to lapse). Returns None when another process had the turn."""
    if not await redis.set(LOCK_KEY, "1", nx=True, ex=max(1, interval_seconds)):
        return None
    now = datetime.now(UTC)
    expired = await expire_due(now)
    reminders = await queue_reminders(now, timedelta(hours=reminder_hours)) if reminder_hours > 0 else 0
    runs = await automation_runs.record_voucher_expiring(now, reminder_hours)
    return ExpiryReport(expired, reminders, runs)
