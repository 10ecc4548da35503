"""Executing automation runs: each pending run's rule's action, once.

A run is executed by whoever recorded it, right after the commit (a request), or by the
automation worker when it is due (``run_after``: at once for runs the periodic passes
recorded, ``GRACE_SECONDS`` later for a request's, which only a crash leaves behind).

1. **Lease**: a conditional UPDATE moves the pending run's ``run_after`` ``LEASE_SECONDS``
   ahead; only the caller that moved it executes, so two workers do not both work on it.
   (Actions are idempotent besides: a run executed twice after a lapsed lease still acts
   once.)
2. **Rule**: a rule disabled or deleted since the run was recorded does nothing: the run
   is ``refused`` with ``rule_disabled``.
3. **Action** (``services.automation.actions.ACTIONS``): ``done`` with what it did, or
   ``refused`` with the reason (sold out, campaign full, ...): recorded, never retried.
   ``Later`` (Redis unreachable) leaves it pending for ``LATER_SECONDS``; an unexpected
   error leaves it pending with a growing delay and, after ``MAX_ATTEMPTS`` errors, marks
   it ``failed``.

The outcome is written with a compare-and-set on ``pending``: the first to finish wins.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import F

from models.automation import AutomationRule, AutomationRun
from models.customers import Customer
from services.automation import runs as automation_runs
from services.automation.actions import ACTIONS, Later, Outcome
from services.core import column
from services.journey import Journey

log = logging.getLogger("wxcampaign.automation")

LEASE_SECONDS = 60.0
LATER_SECONDS = 60.0
MAX_ATTEMPTS = 5
#: Runs the worker takes per pass.
WORKER_BATCH = 200


async def _settle(run_id: int, status: str, outcome: dict[str, Any], refusal: str | None = None) -> bool:
    return bool(
        await AutomationRun.filter(id=run_id, status="pending").update(
            status=status, outcome=outcome, refusal=refusal, finished_at=datetime.now(UTC)
        )
    )


async def _execute_one(j: Journey, run_id: int, *, due_only: bool) -> bool:
    """Execute one pending run if this caller gets its lease; True when it settled."""
    now = datetime.now(UTC)
    query = AutomationRun.filter(id=run_id, status="pending")
    if due_only:
        query = query.filter(run_after__lte=now)
    if not await query.update(run_after=now + timedelta(seconds=LEASE_SECONDS)):
        return False  # finished, or another process holds it
    run = await AutomationRun.get(id=run_id)
    rule = await AutomationRule.get(id=run.rule_id)
    if not rule.enabled:
        return await _settle(run.id, "refused", {}, "rule_disabled")
    handler = ACTIONS.get(rule.action)
    if handler is None:  # an action this build does not know (a rule written by a newer one)
        return await _settle(run.id, "refused", {"action": rule.action}, "unknown_action")
    try:
        outcome: Outcome = await handler(j, run, rule.action_params)
    except Later as exc:
        log.info("automation run %d: %s; retrying later", run.id, exc)
        await AutomationRun.filter(id=run.id, status="pending").update(
            run_after=datetime.now(UTC) + timedelta(seconds=LATER_SECONDS)
        )
        return False
    except Exception:
        log.exception("automation run %d failed (attempt %d)", run.id, run.attempts + 1)
        if run.attempts + 1 >= MAX_ATTEMPTS:
            await AutomationRun.filter(id=run.id, status="pending").update(attempts=F("attempts") + 1)
            return await _settle(run.id, "failed", {}, "error")
        delay = LATER_SECONDS * 2**run.attempts
        await AutomationRun.filter(id=run.id, status="pending").update(
            attempts=F("attempts") + 1, run_after=datetime.now(UTC) + timedelta(seconds=delay)
        )
        return False
    return await _settle(run.id, outcome.status, outcome.details, outcome.refusal)


async def execute(j: Journey, run_ids: list[int]) -> int:
    """Execute runs just recorded (after their transaction committed): how many settled.
    Never raises: what fails here stays pending for the worker."""
    settled = 0
    for run_id in run_ids:
        try:
            settled += await _execute_one(j, run_id, due_only=False)
        except Exception:
            log.exception("automation run %d left to the worker", run_id)
    return settled


async def execute_due(j: Journey, limit: int = WORKER_BATCH) -> int:
    """Execute pending runs whose time has come, oldest first: how many were looked at."""
    due = await column(
        AutomationRun.filter(status="pending", run_after__lte=datetime.now(UTC))
        .order_by("run_after", "id")
        .limit(limit),
        "id",
    )
    for run_id in due:
        try:
            await _execute_one(j, int(run_id), due_only=True)
        except Exception:
            log.exception("automation run %s: execution failed; it stays pending", run_id)
    return len(due)


async def execute_due_forever(j: Journey, interval: float, batch: int = WORKER_BATCH) -> None:
    """The automation worker: executes due runs, a batch at a time, until cancelled."""
    me = asyncio.current_task()
    while me is None or not me.cancelling():
        looked = 0
        try:
            looked = await execute_due(j, batch)
        except Exception:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("automation pass failed")
        await asyncio.sleep(0 if looked >= batch else interval)
    raise asyncio.CancelledError


class Registration:
    """The ``registered`` trigger of a WeChat login: pass ``accept`` to
    ``customers.login`` as (part of) its ``on_create`` hook, then call ``finish``."""

    def __init__(self, j: Journey) -> None:
        self.journey = j
        self.run_ids: list[int] = []

    async def accept(self, customer: Customer) -> None:
        """Precondition: inside the transaction that creates ``customer``."""
        self.run_ids = await automation_runs.fire("registered", customer.id)

    async def finish(self) -> None:
        """After the login committed. A failure here never fails the login: the worker
        executes what is left."""
        try:
            await execute(self.journey, self.run_ids)
        except Exception:
            log.exception("automation after registration failed; left to the worker")
