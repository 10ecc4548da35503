"""Background workers that run inside the server process (RUN_WORKERS=true), or alone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from miniprogram_api import MiniProgramClient
from server.keys import (
    DATABASE,
    DRAWS,
    FEED,
    GROUP_BUYS,
    HTTP_SESSION,
    JOURNEY,
    REDIS,
    REDIS_STATE,
    SETTINGS,
    STOCK,
    WECHAT,
)  # fmt: skip
from server.metrics import WORKER_PASS, timed_pass
from server.policies import alert_policy, delivery_policy, sender_policy
from server.settings import Settings
from services import alerts
from services.audience import facts as audience_facts
from services.automation import engine as automation
from services.automation import runs as automation_runs
from services.campaigns import review
from services.core import AnyRedis, run_to_end
from services.feed import catalog_changed
from services.forms import BargainWorker, DrawsWorker, GroupBuys, GroupWorker
from services.journey import issue_pending_forever
from services.notify import NotifySender, SendReport, send_forever
from services.notify import outbox as notify_outbox
from services.privacy import RetentionPolicy
from services.privacy import purge as retention_purge
from services.stock import ClaimsWorker, Stock
from services.stock import sync as stock_sync
from services.wallet import expiry as voucher_expiry
from services.webhooks import WebhookSender, deliver_forever

log = logging.getLogger("wxcampaign.workers")

CLAIMS_PASS = WORKER_PASS.labels("claims")

_SCHEDULER_LOCK = "lock:scheduler"
_FANOUT_LOCK = "lock:notify-fanout"
_INACTIVE_LOCK = "lock:automation-inactive"
_RETENTION_LOCK = "lock:retention"
_ALERTS_LOCK = "lock:alerts"
_GROUP_EXPIRY_LOCK = "lock:group-expiry"
# Release the lock only if we still hold it (it may have expired and passed on).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


async def scheduler_pass(redis: AnyRedis, stock: Stock, hold_seconds: float) -> list[tuple[int, str]]:
    """One pass under the cross-process lock; a process that misses the lock skips it.

    The lock only saves duplicate work: each transition is itself a compare-and-set.
    Coupons follow their campaign into Redis (loaded, or closed) after each transition.
    """
    token = secrets.token_hex(8)
    if not await redis.set(_SCHEDULER_LOCK, token, nx=True, px=max(1000, int(hold_seconds * 1000))):
        return []
    try:
        done = await run_to_end(review.run_due())
        for campaign_id, status in done:
            log.info("scheduler: campaign %d is now %s", campaign_id, status)
            await stock_sync.after_transition(stock, campaign_id, status)
        if done:  # the feed and campaign pages show the new states at once, in every process
            await catalog_changed(redis, [campaign_id for campaign_id, _ in done])
        await stock_sync.sweep_hot_coupons(stock)  # hot coupons' leftovers into one bucket
        return done
    finally:
        await redis.eval(_RELEASE, 1, _SCHEDULER_LOCK, token)


async def daily_facts_pass(redis: AnyRedis) -> bool:
    """Recompute every customer's windowed facts once per UTC day, in one process: the
    windows (spend in 30 days, ...) slide with time even when nobody buys anything."""
    today = datetime.now(UTC).date().isoformat()
    if not await redis.set(f"lock:facts-recompute:{today}", "1", nx=True, ex=2 * 86400):
        return False
    batches = await run_to_end(audience_facts.recompute_facts())
    log.info("recomputed customer facts for %s (%d batches)", today, batches)
    return True


async def voucher_expiry_pass(redis: AnyRedis, interval_seconds: int = 300, reminder_hours: int = 72) -> bool:
    """Flip the stored state of expired vouchers and queue "expiring soon" reminders, once
    per interval across processes (services.wallet.expiry)."""
    report = await run_to_end(voucher_expiry.expiry_pass(redis, interval_seconds, reminder_hours))
    if report is None:
        return False
    if report.expired or report.reminders or report.automation_runs:
        log.info(
            "vouchers: %d marked expired, %d reminders queued, %d automation runs",
            report.expired, report.reminders, report.automation_runs,
        )  # fmt: skip
    return True


async def inactive_customers_pass(redis: AnyRedis, interval_seconds: int) -> bool:
    """Record the runs of ``inactive_for_days`` automation rules, once per interval across
    processes (the first to take the lock runs; the lock is left to lapse). The runs are
    unique per rule and customer, so a second pass records nothing twice: the lock only
    saves work. The automation worker executes them."""
    if not await redis.set(_INACTIVE_LOCK, "1", nx=True, ex=max(1, interval_seconds)):
        return False
    found = await run_to_end(automation_runs.record_inactive(datetime.now(UTC)))
    if found:
        log.info("automation: %d inactive customers to run rules for", found)
    return True


async def notify_fanout_pass(redis: AnyRedis, settings: Settings) -> bool:
    """Enqueue due "new campaign" and "ending soon" notifications (services.notify.outbox),
    in one process at a time (the lock saves work: the fan-outs are idempotent)."""
    token = secrets.token_hex(8)
    if not await redis.set(_FANOUT_LOCK, token, nx=True, px=60_000):
        return False
    try:
        report = await run_to_end(notify_outbox.fanout_pass(settings.notify, settings.notify_ending_hours))
        if report.new_campaign or report.campaign_ending:
            log.info(
                "notifications queued: %d new campaign, %d ending soon", report.new_campaign, report.campaign_ending
            )
        return True
    finally:
        await redis.eval(_RELEASE, 1, _FANOUT_LOCK, token)


class _MeasuredSender(NotifySender):
    """The sender, each pass timed (``wxcampaign_worker_pass_seconds{worker="notifications"}``)."""

    async def run_once(self) -> SendReport:
        with timed_pass("notifications"):
            return await super().run_once()


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        tracking_days=settings.tracking_retention_days,
        outbox_days=settings.outbox_retention_days,
        idempotency_days=settings.idempotency_retention_days,
        batch=settings.retention_batch,
    )


async def retention_pass(redis: AnyRedis, settings: Settings) -> bool:
    """Purge data past its retention (services.privacy.retention), once per interval
    across processes: the first to take the lock runs, and the lock is left to lapse so
    no other process runs before the interval is over (a purge repeated early would only
    find less to do: the lock saves work)."""
    if not await redis.set(_RETENTION_LOCK, "1", nx=True, ex=max(1, settings.retention_interval)):
        return False
    report = await run_to_end(retention_purge(redis, retention_policy(settings)))
    if report.total:
        log.info("retention: purged %s", ", ".join(f"{n} {what}" for what, n in report.counts.items() if n))
    return True


def notify_sender(redis: AnyRedis, client: MiniProgramClient, settings: Settings) -> NotifySender:
    policy = sender_policy(settings)
    return _MeasuredSender(redis, client, settings.notify, policy)


async def group_expiry_pass(redis: AnyRedis, groups: GroupBuys, hold_seconds: float) -> dict[str, int] | None:
    """Close expired group buy groups (failed, or filled with virtual members), in one
    process at a time (the lock saves work: the script closes a group once)."""
    token = secrets.token_hex(8)
    if not await redis.set(_GROUP_EXPIRY_LOCK, token, nx=True, px=max(1000, int(hold_seconds * 1000))):
        return None
    try:
        done = await run_to_end(groups.expire_due())
        if any(done.values()):
            log.info("group buys: %d failed, %d filled with virtual members", done["failed"], done["virtual"])
        return done
    finally:
        await redis.eval(_RELEASE, 1, _GROUP_EXPIRY_LOCK, token)


async def scheduler_loop(redis: AnyRedis, stock: Stock, settings: Settings, groups: GroupBuys | None = None) -> None:
    """Run passes forever. The first pass runs at once: on start, catch up on what was
    missed while no process ran."""
    interval = settings.scheduler_interval
    me = asyncio.current_task()
    # Checked each pass: a library may swallow the CancelledError it was given.
    while me is None or not me.cancelling():
        try:
            with timed_pass("scheduler"):
                await scheduler_pass(redis, stock, hold_seconds=max(30.0, interval * 2))
                await daily_facts_pass(redis)
                await voucher_expiry_pass(redis, settings.voucher_expiry_interval, settings.voucher_reminder_hours)
                await notify_fanout_pass(redis, settings)
                await inactive_customers_pass(redis, settings.automation_inactive_interval)
                await retention_pass(redis, settings)
                if groups is not None:
                    await group_expiry_pass(redis, groups, hold_seconds=max(30.0, interval * 2))
        except Exception:  # a failed pass must not kill the loop; the next one retries
            # A cancellation swallowed by a client library must still stop the loop.
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("scheduler pass failed")
        await asyncio.sleep(interval)
    raise asyncio.CancelledError


class _MeasuredClaimsWorker(ClaimsWorker):
    """The claims worker, each pass that found work timed
    (``wxcampaign_worker_pass_seconds{worker="claims"}``: idle passes would bury them)."""

    async def run_once(self, *, recover: bool = True) -> int:
        started = time.perf_counter()
        handled = await super().run_once(recover=recover)
        if handled:
            CLAIMS_PASS.observe(time.perf_counter() - started)
        return handled


def claims_worker(redis: AnyRedis, settings: Settings) -> ClaimsWorker:
    return _MeasuredClaimsWorker(redis, batch=settings.claims_batch, min_idle_ms=settings.claims_min_idle_ms)


async def alerts_pass(redis: AnyRedis, settings: Settings) -> alerts.AlertReport | None:
    """Evaluate the alert rules once per ALERT_INTERVAL across processes: the first to take
    the lock runs and leaves it to lapse (an episode is unique per subject, so a second
    pass would raise nothing twice: the lock saves work)."""
    if not await redis.set(_ALERTS_LOCK, "1", nx=True, px=max(1000, int(settings.alert_interval * 1000))):
        return None
    report = await run_to_end(alerts.evaluate(redis, alert_policy(settings)))
    if report.raised or report.cleared:
        log.info("alerts: raised %s, cleared %s", report.raised, report.cleared)
    return report


async def alerts_loop(redis: AnyRedis, settings: Settings) -> None:
    me = asyncio.current_task()
    while me is None or not me.cancelling():
        try:
            with timed_pass("alerts"):
                await alerts_pass(redis, settings)
        except Exception:  # a failed pass must not kill the loop; the next one retries
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("alerts pass failed")
        await asyncio.sleep(min(settings.alert_interval, 5.0))
    raise asyncio.CancelledError


def webhook_sender(redis: AnyRedis, session: aiohttp.ClientSession, settings: Settings) -> WebhookSender:
    return WebhookSender(redis, session, settings.secret_key, delivery_policy(settings))


def _start_workers(app: web.Application) -> list[asyncio.Task[None]]:
    settings = app[SETTINGS]
    tasks = [
        asyncio.create_task(scheduler_loop(app[REDIS], app[STOCK], settings, app[GROUP_BUYS]), name="scheduler"),
        asyncio.create_task(claims_worker(app[REDIS], settings).run_forever(), name="claims"),
        asyncio.create_task(GroupWorker(app[REDIS], app[JOURNEY]).run_forever(), name="group-buys"),
        # Decided bargain helps, from their streams into the database (services/forms/bargain.py).
        asyncio.create_task(BargainWorker(app[REDIS]).run_forever(), name="bargain-helps"),
        asyncio.create_task(DrawsWorker(app[DRAWS]).run_forever(), name="draws"),
    ]
    grants = issue_pending_forever(app[JOURNEY].rewards, settings.scheduler_interval)
    tasks.append(asyncio.create_task(grants, name="reward-grants"))
    sender = notify_sender(app[REDIS], app[WECHAT], settings)
    tasks.append(asyncio.create_task(send_forever(sender, settings.scheduler_interval), name="notifications"))
    runs = automation.execute_due_forever(app[JOURNEY], settings.scheduler_interval)
    tasks.append(asyncio.create_task(runs, name="automation"))
    hooks = deliver_forever(webhook_sender(app[REDIS], app[HTTP_SESSION], settings), settings.webhook_interval)
    tasks.append(asyncio.create_task(hooks, name="webhooks"))
    tasks.append(asyncio.create_task(alerts_loop(app[REDIS], settings), name="alerts"))
    return tasks


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    tasks: list[asyncio.Task[None]] = []

    async def start_when_ready() -> None:
        # Started before the database and Redis answer, every pass would fail with a
        # traceback: wait for both (server/dependencies.py retries them).
        await app[DATABASE].ready.wait()
        await app[REDIS_STATE].ready.wait()
        tasks.extend(_start_workers(app))

    starter = asyncio.create_task(start_when_ready(), name="workers-start") if settings.run_workers else None
    try:
        yield
    finally:
        if starter is not None:
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The feed's background builds (index, audience sets) use the database and Redis,
        # which close after this context.
        await app[FEED].close()
