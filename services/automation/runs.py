"""Recording automation runs: a trigger happened to a customer, so each enabled rule of
that trigger owes the customer one run.

Recording is the cheap, transactional half (``services.automation`` executes). A run is
unique per (rule, customer), so a trigger that happens again, or twice at once, records
nothing more: a rule acts on a customer at most once.

- Triggers inside a request (``registered``, ``first_purchase``, ``campaign_completed``,
  ``tier_changed``)
  call ``fire`` in the transaction that records what happened, so the run commits with
  it or not at all, and the request executes it after the commit. Its ``run_after`` is
  ``GRACE_SECONDS`` ahead: the worker only takes it over if the request did not finish
  it (a crash).
- Periodic triggers (``inactive_for_days``, ``voucher_expiring``) are found by passes
  that insert runs in batches, due at once, for the automation worker to execute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from models.audience import CustomerDailyActivity
from models.automation import AutomationRule, AutomationRun
from models.customers import Customer
from models.vouchers import Voucher
from services.core import column

#: How long the worker leaves a run recorded by a request to that request.
GRACE_SECONDS = 30.0
#: Customers (or vouchers) looked at per statement by the periodic passes.
BATCH = 1000


def _matches(rule: AutomationRule, context: dict[str, Any]) -> bool:
    if rule.trigger == "campaign_completed":
        wanted = rule.trigger_params.get("campaign_id")
        return wanted is None or wanted == context.get("campaign_id")
    if rule.trigger == "tier_changed":
        tier = rule.trigger_params.get("tier")
        return tier is None or tier == context.get("to")
    return True


async def fire(trigger: str, customer_id: int, context: dict[str, Any] | None = None) -> list[int]:
    """Record a pending run of every enabled rule of ``trigger`` (that matches
    ``context``) for this customer, unless it has one; the ids of the new runs.
    Precondition: call inside the transaction that records what happened, and execute
    the runs (``services.automation.execute``) after it commits."""
    context = context or {}
    rules = [r for r in await AutomationRule.filter(trigger=trigger, enabled=True) if _matches(r, context)]
    run_after = datetime.now(UTC) + timedelta(seconds=GRACE_SECONDS)
    ids = []
    for rule in rules:
        try:
            async with in_transaction():  # a savepoint: a repeat leaves the caller's transaction intact
                run = await AutomationRun.create(
                    rule_id=rule.id, customer_id=customer_id, trigger=trigger, context=context, run_after=run_after
                )
            ids.append(run.id)
        except IntegrityError:
            pass  # this rule already ran (or is running) for this customer
    return ids


async def _insert(rule: AutomationRule, rows: list[tuple[int, dict[str, Any]]], now: datetime) -> None:
    await AutomationRun.bulk_create(
        [
            AutomationRun(rule_id=rule.id, customer_id=c, trigger=rule.trigger, context=ctx, run_after=now)
            for c, ctx in rows
        ],
        ignore_conflicts=True,
    )


def _not_run(rule: AutomationRule) -> Subquery:
    return Subquery(AutomationRun.filter(rule_id=rule.id).values("customer_id"))


async def record_inactive(now: datetime, batch: int = BATCH) -> int:
    """Runs of every enabled ``inactive_for_days`` rule for customers inactive that long:
    registered, last logged in and last active (any purchase, visit, refund or check-in
    day in ``customer_daily_activity``, the history ``customer_facts`` derive from)
    before ``now - days``. Activity on the cut-off day itself counts as recent (days are
    UTC dates). Returns how many customers were looked at."""
    total = 0
    for rule in await AutomationRule.filter(trigger="inactive_for_days", enabled=True).order_by("id"):
        cutoff = now - timedelta(days=int(rule.trigger_params["days"]))
        recent = Subquery(CustomerDailyActivity.filter(day__gte=cutoff.date()).values("customer_id"))
        after = 0
        while True:
            ids = await column(
                Customer.filter(id__gt=after, created_at__lt=cutoff, erased_at__isnull=True)
                .filter(Q(last_login_at__isnull=True) | Q(last_login_at__lt=cutoff))
                .exclude(id__in=recent)
                .exclude(id__in=_not_run(rule))
                .order_by("id")
                .limit(batch),
                "id",
            )
            if not ids:
                break
            context = {"days": rule.trigger_params["days"]}
            await _insert(rule, [(int(i), context) for i in ids], now)
            total += len(ids)
            after = int(ids[-1])
            if len(ids) < batch:
                break
    return total


async def record_voucher_expiring(now: datetime, default_hours: int, batch: int = BATCH) -> int:
    """Runs of every enabled ``voucher_expiring`` rule for customers holding an available
    voucher whose ``valid_until`` falls within the rule's ``hours`` (else
    ``default_hours``; 0: the rule waits) from now. Returns how many runs were due."""
    total = 0
    for rule in await AutomationRule.filter(trigger="voucher_expiring", enabled=True).order_by("id"):
        hours = rule.trigger_params.get("hours") or default_hours
        if not hours:
            continue
        until = now + timedelta(hours=hours)
        while True:
            rows = (
                await Voucher.filter(status="available", valid_until__gt=now, valid_until__lte=until)
                .exclude(customer_id__in=_not_run(rule))
                .order_by("valid_until", "id")
                .limit(batch)
                .values_list("id", "customer_id", "valid_until")
            )
            if not rows:
                break
            first: dict[int, dict[str, Any]] = {}
            for voucher_id, customer_id, valid_until in rows:
                first.setdefault(
                    int(customer_id),
                    {"voucher_id": voucher_id, "valid_until": valid_until.isoformat()},
                )
            await _insert(rule, list(first.items()), now)
            total += len(first)
            if len(rows) < batch:
                break
    return total
