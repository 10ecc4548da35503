"""The notifications sender: takes due outbox rows and sends them through WeChat, at most
once each, never without an allowance, within a rate shared by all processes.

One row, in order:

1. **Claim** (one transaction): ``pending -> sending`` with a compare-and-set (of two
   senders one wins), ``attempts + 1``; on the first attempt one unit of the customer's
   allowance for the kind's template is taken (``remaining - 1 WHERE remaining > 0``). No
   allowance: the row is ``skipped`` (errmsg ``no_allowance``) and nothing is sent. The
   claim is committed before WeChat is called.
2. **Permit**: one send from the sliding-window limit in Redis (``lua/send_rate.lua``:
   at most NOTIFY_RATE_LIMIT sends in any NOTIFY_RATE_WINDOW_SECONDS, across processes).
   None left: the row goes back to ``pending`` (its allowance kept) and the pass stops.
3. **Send**, once (no transport-level retry), and record WeChat's answer on the row
   (errcode, errmsg, msgid):

   - ``0``: ``sent``.
   - ``-1`` (busy), ``45009``/``45011`` (frequency limits), ``40001``/``42001`` after the
     client's one token refresh, or no connection made at all: WeChat did not take it.
     Back to ``pending`` after a backoff (NOTIFY_RETRY_SECONDS, doubling), allowance kept.
     After NOTIFY_MAX_ATTEMPTS: ``failed`` and the allowance is given back.
   - ``43101`` (the user holds no acceptance at WeChat): ``failed``, the allowance is not
     given back (WeChat says it is not there).
   - any other errcode (``47003`` bad data, ``40003``, ``40037``, ...): ``failed``, the
     allowance given back (WeChat refused, so the acceptance is unused).
   - a timeout, a dropped connection or a garbled answer after the request went out: the
     message may have been delivered, and WeChat has no idempotency key to ask with:
     ``unknown``, never resent, the allowance stays taken.

Campaign messages (``new_campaign``, ``campaign_ending``) of a campaign under a running
experiment (``services.experiments``): a customer of its no-contact holdout is not sent
the message (the row is ``skipped``, errmsg ``experiment_holdout``, before any allowance
is taken; the exposure is logged, surface ``notification``, as the moment they would have
been contacted, so the holdout is counted like the arms); for everyone else the exposure
is logged (surface ``notification``, once per customer and experiment) when the message
is sent.

A worker stopped gracefully finishes the row in hand (each row runs to its end, see
``services.core.shielded``). A row still ``sending`` after a crash cannot tell whether WeChat
got it: once its claim is older than any send could take (``stale_after``), it becomes
``unknown`` (errmsg says so) and is not resent. At most once beats at least once here: a
duplicate marketing message is worse than a missing one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

import miniprogram_api as wx
from models.customers import Customer
from models.notifications import Notification, NotifySubscription
from models.redemptions import REMINDER_KIND, VoucherReminder
from services.core import AnyRedis, column, request_id_var, run_to_end
from services.experiments import Experiments
from services.notify import subscriptions as notify_subscriptions
from services.notify.languages import localize
from services.notify.outbox import REQUEST_ID_KEY
from services.notify.templates import NotifyTemplates, TemplateSpec, render

log = logging.getLogger("wxcampaign.notify")

RATE_KEY = "notify:send-rate"
#: Errcodes meaning WeChat did not take the message and may take it later.
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45011, 40001, 42001})
NOT_SUBSCRIBED = 43101
#: How many due rows one pass reads at most, in batches (the next pass continues).
MAX_BATCHES_PER_PASS = 20
#: Kinds that contact a customer about a campaign: held back from an experiment's
#: holdout, and an exposure of the arm when sent. (A reward or a group's result answers
#: the customer's own taking part, which the holdout cannot start while the experiment runs.)
CAMPAIGN_KINDS = frozenset({"new_campaign", "campaign_ending"})


@dataclass(frozen=True)
class SenderPolicy:
    rate_limit: int = 600
    rate_window_seconds: int = 60
    max_attempts: int = 5
    retry_seconds: float = 30.0
    utc_offset_minutes: int = 480
    batch: int = 100
    #: A claim older than this is from a crashed sender (longer than any send can take).
    stale_after_seconds: float = 120.0


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    recovered: int = 0
    rate_limited: bool = False
    outcomes: dict[int, str] = field(default_factory=dict)

    def count(self, row_id: int, outcome: str) -> None:
        self.outcomes[row_id] = outcome
        if outcome in ("sent", "retried", "failed", "skipped", "unknown"):
            setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(frozen=True)
class Claim:
    """A row this sender holds in ``sending``, with the allowance taken."""

    id: int
    kind: str
    customer_id: int
    template_id: str
    attempts: int
    payload: dict[str, Any]


class NotifySender:
    """Sends due notifications. One per process; several may run at once anywhere."""

    def __init__(
        self, redis: AnyRedis, client: wx.MiniProgramClient, templates: NotifyTemplates, policy: SenderPolicy,
        experiments: Experiments | None = None,
    ) -> None:  # fmt: skip
        self.client = client
        #: The running experiments (the holdout and exposures of campaign messages).
        self.experiments = experiments if experiments is not None else Experiments(redis)
        self.templates = templates
        self.policy = policy
        self._rate = redis.register_script((Path(__file__).parent / "send_rate.lua").read_text())

    # --- one pass -------------------------------------------------------------------

    async def run_once(self) -> SendReport:
        """Recover stale claims, then send what is due until done or out of permits."""
        report = SendReport(recovered=await self.recover_stale())
        for _ in range(MAX_BATCHES_PER_PASS):
            rows = (
                await Notification.filter(status="pending", next_attempt_at__lte=datetime.now(UTC))
                .order_by("id")
                .limit(self.policy.batch)
            )
            for row in rows:
                # Under the id of the request that enqueued it: this row's log lines and
                # its WeChat call (X-Request-Id) name that request. Set before run_to_end
                # makes its task, which copies the context.
                token = request_id_var.set(str((row.payload or {}).get(REQUEST_ID_KEY) or ""))
                try:
                    outcome = await run_to_end(self._process(row))
                finally:
                    request_id_var.reset(token)
                if outcome == "rate_limited":
                    report.rate_limited = True
                    return report
                if outcome is not None:
                    report.count(row.id, outcome)
            if len(rows) < self.policy.batch:
                break
        return report

    async def recover_stale(self) -> int:
        """Rows left ``sending`` by a crashed sender become ``unknown``: not resent."""
        now = datetime.now(UTC)
        return await Notification.filter(
            status="sending", claimed_at__lt=now - timedelta(seconds=self.policy.stale_after_seconds)
        ).update(status="unknown", errmsg="the sender stopped during the send: delivery unknown, not resent",
                 finished_at=now)  # fmt: skip

    async def _process(self, row: Notification) -> str | None:
        spec = self.templates.get(row.kind)
        campaign_id = await self._under_experiment(row)
        if campaign_id is not None:
            assigned = await self.experiments.peek(row.customer_id, campaign_id)
            if assigned is not None and assigned.holdout:
                return await self._hold_out(row, campaign_id)
        claim = await self.claim(row, spec)
        if claim is None or isinstance(claim, str):
            return claim  # another sender has it, or it was skipped
        if spec is None:
            # The kind lost its template while a retry waited.
            await self._finish(claim, "failed", None, "no template configured for this kind", give_back=True)
            return "failed"
        if not await self._permit():
            await Notification.filter(id=claim.id, status="sending").update(
                status="pending", attempts=F("attempts") - 1, claimed_at=None
            )
            return "rate_limited"
        outcome = await self._send(claim, spec)
        if outcome == "sent" and campaign_id is not None:
            await self.experiments.expose(row.customer_id, (campaign_id,), "notification", datetime.now(UTC))
        return outcome

    async def _under_experiment(self, row: Notification) -> int | None:
        """The campaign of a campaign message when an experiment runs on it, else None
        (no query: the running experiments are held per process)."""
        if row.kind not in CAMPAIGN_KINDS:
            return None
        raw = (row.payload or {}).get("campaign_id")
        if raw is None:
            return None
        campaign_id = int(raw)
        return campaign_id if campaign_id in await self.experiments.running() else None

    async def _hold_out(self, row: Notification, campaign_id: int) -> str | None:
        """A holdout customer's campaign message: skipped, nothing taken or sent (None:
        another sender has the row). Logs the exposure they would have had."""
        now = datetime.now(UTC)
        async with in_transaction():
            skipped = await Notification.filter(id=row.id, status="pending").update(
                status="skipped", errmsg="experiment_holdout", finished_at=now, allowance_held=False
            )
            if not skipped:
                return None
            if row.allowance_held and row.template_id is not None:
                # Taken by an attempt before the experiment started: not used, given back.
                await notify_subscriptions.give_back(row.customer_id, row.template_id)
        await self.experiments.expose(row.customer_id, (campaign_id,), "notification", now)
        return "skipped"

    # --- claim ------------------------------------------------------------------------

    async def claim(self, row: Notification, spec: TemplateSpec | None) -> Claim | str | None:
        """Step 1 (see the module docstring): the Claim, ``"skipped"``, or None when
        another sender has the row. Commits before returning."""
        now = datetime.now(UTC)
        async with in_transaction():
            won = await Notification.filter(id=row.id, status="pending").update(
                status="sending", claimed_at=now, attempts=F("attempts") + 1
            )
            if not won:
                return None
            # Read again under the claim: the row may have had attempts since it was listed.
            fresh = await Notification.get(id=row.id)
            if fresh.allowance_held and fresh.template_id is not None:
                template_id = fresh.template_id
            elif spec is None:
                await Notification.filter(id=row.id).update(status="skipped", errmsg="no_template", finished_at=now)
                return "skipped"
            else:
                template_id = spec.template_id
                if not await notify_subscriptions.take(fresh.customer_id, template_id):
                    await Notification.filter(id=row.id).update(
                        status="skipped", template_id=template_id, errmsg="no_allowance", finished_at=now
                    )
                    return "skipped"
                await Notification.filter(id=row.id).update(allowance_held=True, template_id=template_id)
        return Claim(
            id=fresh.id, kind=fresh.kind, customer_id=fresh.customer_id,
            template_id=template_id, attempts=fresh.attempts, payload=dict(fresh.payload or {}),
        )  # fmt: skip

    async def _permit(self) -> bool:
        granted = await self._rate(
            keys=[RATE_KEY],
            args=[self.policy.rate_limit, self.policy.rate_window_seconds * 1000, secrets.token_hex(8)],
        )
        return int(granted) == 1

    # --- send and record ------------------------------------------------------------

    async def _send(self, claim: Claim, spec: TemplateSpec) -> str:
        openid = (await Customer.filter(id=claim.customer_id).values_list("openid", flat=True))[0]
        # The customer's language, as reported with the allowance this message takes.
        language = await column(
            NotifySubscription.filter(customer_id=claim.customer_id, template_id=claim.template_id), "language"
        )
        payload = localize(claim.payload, language[0] if language else None)
        data, page = render(spec, payload, timedelta(minutes=self.policy.utc_offset_minutes))
        try:
            msgid = await self.client.send_subscribe_message(
                str(openid), claim.template_id, data, page=page, retry=False
            )
        except wx.WeChatError as exc:
            return await self._refused(claim, exc.errcode, exc.errmsg)
        except wx.WeChatUnavailable as exc:
            if exc.reached and exc.path == wx.SUBSCRIBE_SEND_PATH:
                return await self._finish(claim, "unknown", None, f"delivery unknown, not resent: {exc}")
            return await self._retry(claim, None, str(exc))
        except RedisError as exc:  # the token cache, before anything was posted
            return await self._retry(claim, None, f"redis: {type(exc).__name__}")
        except Exception as exc:
            log.exception("notification %d: unexpected failure during the send", claim.id)
            return await self._finish(claim, "unknown", None, f"delivery unknown, not resent: {type(exc).__name__}")
        return await self._finish(claim, "sent", 0, "ok", msgid=msgid)

    async def _refused(self, claim: Claim, errcode: int, errmsg: str) -> str:
        if errcode in TRANSIENT_ERRCODES:
            return await self._retry(claim, errcode, errmsg)
        # WeChat refused: not delivered. 43101 says the acceptance is not there to return.
        return await self._finish(claim, "failed", errcode, errmsg, give_back=errcode != NOT_SUBSCRIBED)

    async def _retry(self, claim: Claim, errcode: int | None, errmsg: str) -> str:
        if claim.attempts >= self.policy.max_attempts:
            return await self._finish(claim, "failed", errcode, errmsg, give_back=True)
        delay = self.policy.retry_seconds * (2 ** (claim.attempts - 1))
        await Notification.filter(id=claim.id, status="sending").update(
            status="pending", errcode=errcode, errmsg=errmsg[:200], claimed_at=None,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
        )  # fmt: skip
        return "retried"

    async def _finish(
        self, claim: Claim, status: str, errcode: int | None, errmsg: str, *, give_back: bool = False,
        msgid: str | None = None,
    ) -> str:  # fmt: skip
        now = datetime.now(UTC)
        async with in_transaction():
            done = await Notification.filter(id=claim.id, status="sending").update(
                status=status, errcode=errcode, errmsg=errmsg[:200], msgid=msgid, finished_at=now,
                sent_at=now if status == "sent" else None, allowance_held=not give_back,
            )  # fmt: skip
            if done and give_back:
                await notify_subscriptions.give_back(claim.customer_id, claim.template_id)
            if done and status == "sent" and claim.kind == "voucher_expiring":
                await VoucherReminder.filter(voucher_id=claim.payload.get("voucher_id"), kind=REMINDER_KIND).update(
                    sent_at=now
                )
        if status != "sent":
            log.info("notification %d %s: errcode=%s %s", claim.id, status, errcode, errmsg[:200])
        return status


async def send_forever(sender: NotifySender, interval: float) -> None:
    """Run passes until cancelled; a cancel lets the row in hand finish first."""
    me = asyncio.current_task()
    while me is None or not me.cancelling():
        try:
            report = await sender.run_once()
            if report.sent or report.failed or report.unknown or report.recovered:
                log.info(
                    "notifications: %d sent, %d retried, %d failed, %d skipped, %d unknown, %d recovered",
                    report.sent, report.retried, report.failed, report.skipped, report.unknown, report.recovered,
                )  # fmt: skip
        except Exception:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("notifications pass failed")
        await asyncio.sleep(interval)
    raise asyncio.CancelledError
