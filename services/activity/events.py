"""Events that move progress: purchases, visits and refunds from integrations, referrals
(services.activity.referrals), and the customer's daily check-in.

Each event is one database transaction that first locks the customer's row (PostgreSQL
``SELECT ... FOR NO KEY UPDATE``; SQLite runs one transaction at a time), so one customer's
events apply one after another while different customers' run in parallel. Inside it:

- the event row is inserted, unique per (integration, external id): the same event again
  is a replay that returns the first result and changes nothing (another body under the
  same external id is ``event_conflict``)
- the activity goes to the audience facts (``record_activity``)
- each of the customer's joined participations whose goal metric the event feeds (visits,
  spend, purchases, checkin_streak), whose window holds the event's time and whose scope
  (stores, categories) it falls in gets a progress step (unique per participation and
  cause), and completes when it reaches the target: a compare-and-set ``joined ->
  completed`` decides who grants the reward, so two events completing it at once grant
  it once
- a purchase earns ``points_per_yuan`` points per 100 fen, and is credited to at most one
  campaign (services.activity.attribution: the voucher redeemed on its order, else the
  customer's latest join within ``attribution_window_days``), once per order
- a profile event (a CRM syncing the membership tier) sets the customer's tier
  (services.activity.tiers: recorded with the integration as its source, a
  ``tier_changed`` trigger, the feed's audiences and ranking follow after the commit)
- a refund takes back the progress steps and points its purchase gave (points only as far
  as the balance allows: the balance never goes negative). A refund that arrives before
  its purchase is kept ``pending``; when the purchase comes, it is recorded as refunded
  and applies nothing.

Reward coupons decided by a completion are issued through the stock path after the
commit, and so are the automation runs the transaction recorded (a completion fires
``campaign_completed`` rules, a customer's first applied purchase ``first_purchase``
rules: services.automation.runs). A refund that takes a completed participation back
below its target claws its reward back when the campaign's ``refund_policy`` is
``claw_back`` (the default: services.journey.rewards.claw_back), and leaves it with
``keep``. Refunds do not lower the audience facts (their daily table only adds).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.audience import CustomerFacts
from models.customers import Customer
from models.journey import CheckIn, IntegrationEvent, ProgressEntry
from models.participations import Participation
from models.stores import Store
from services import outbound
from services.activity import attribution, tiers
from services.audience import record_activity
from services.automation import engine as automation
from services.automation import runs as automation_runs
from services.campaigns import CampaignSnapshot
from services.core import audit, column, errors
from services.feed import viewer_changed
from services.journey import Journey, claw_back, grant_in_transaction, points

#: Goal metrics each kind of activity feeds, with the amount.
PURCHASE_METRICS = ("spend", "purchases")


@dataclass(frozen=True)
class EventSpec:
    """A validated integration event (the handler's schema maps onto this)."""

    type: str
    external_id: str
    occurred_at: datetime
    customer_id: int | None = None
    openid: str | None = None
    order_ref: str | None = None
    amount: int = 0
    store_id: int | None = None
    categories: tuple[str, ...] = ()
    refund_of: str | None = None
    #: A profile event's membership tier (a CRM syncing it).
    tier: str | None = None

    def body_hash(self) -> str:
        canonical: dict[str, Any] = {
            "type": self.type, "external_id": self.external_id, "occurred_at": self.occurred_at.isoformat(),
            "customer_id": self.customer_id, "openid": self.openid, "order_ref": self.order_ref,
            "amount": self.amount, "store_id": self.store_id, "categories": sorted(self.categories),
            "refund_of": self.refund_of,
        }  # fmt: skip
        if self.tier is not None:  # only profile events carry it: older events keep their hash
            canonical["tier"] = self.tier
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass
class _Outcome:
    progress: list[dict[str, Any]]
    grant_ids: list[int]
    #: Automation runs recorded in the transaction: executed after the commit.
    run_ids: list[int]
    #: A profile event's tier change, finished after the commit.
    tier: tiers.TierOutcome | None

    def __init__(self) -> None:
        self.progress = []
        self.grant_ids = []
        self.run_ids = []
        self.tier = None


async def _lock_customer(customer_id: int) -> None:
    # FOR NO KEY UPDATE: serializes this customer's events and check-ins, while rows that
    # only refer to the customer (a join's participation) may still be inserted. A model
    # query: tortoise drops FOR UPDATE from values()/values_list() queries.
    await Customer.filter(id=customer_id).select_for_update(no_key=True).first()


async def _step(
    journey: Journey, p: Participation, snap: CampaignSnapshot, source: str, ref: str, occurred_at: datetime,
    outcome: _Outcome, *, delta: int | None = None, set_to: int | None = None,
) -> None:  # fmt: skip
    """One progress step (add ``delta``, or move to ``set_to``), then completion."""
    try:
        async with in_transaction():  # a savepoint: a repeated ref rolls back cleanly
            if await ProgressEntry.filter(participation_id=p.id, ref=ref).exists():
                return
            current: int = (await column(Participation.filter(id=p.id), "progress"))[0]
            change = (set_to - current) if set_to is not None else (delta or 0)
            if change:
                await Participation.filter(id=p.id).update(progress=F("progress") + change)
            value = current + change
            await ProgressEntry.create(
                participation_id=p.id, source=source, ref=ref, delta=change, value_after=value,
                occurred_at=occurred_at,
            )  # fmt: skip
    except IntegrityError:
        return  # the same step recorded concurrently
    completed = False
    if change > 0 and snap.goal_target and value >= snap.goal_target and p.status == "joined":
        # The compare-and-set that decides who grants the reward.
        async with in_transaction():  # the completion and its webhook event commit together
            won = await Participation.filter(id=p.id, status="joined").update(
                status="completed", completed_at=occurred_at
            )
            if won:
                await outbound.enqueue(
                    "participation.completed",
                    f"participation:{p.id}",
                    {"participation_id": p.id, "campaign_id": snap.id, "customer_id": p.customer_id,
                     "value": value, "target": snap.goal_target, "completed_at": occurred_at.isoformat()},
                )  # fmt: skip
        if won:
            completed = True
            outcome.grant_ids += await grant_in_transaction(
                snap,
                p.id,
                p.customer_id,
                "completion",
                snap.reward_coupons(),
            )
            outcome.run_ids += await automation_runs.fire(
                "campaign_completed", p.customer_id, {"campaign_id": snap.id, "participation_id": p.id}
            )
    outcome.progress.append(
        {"campaign_id": snap.id, "participation_id": p.id, "delta": change, "value": value, "completed": completed}
    )


async def _feed(
    journey: Journey, customer_id: int, amounts: dict[str, int], source: str, ref: str, occurred_at: datetime,
    store_id: int | None, categories: tuple[str, ...], outcome: _Outcome,
) -> None:  # fmt: skip
    """Add ``amounts`` (metric -> amount) to every joined participation they count for."""
    parts = await Participation.filter(customer_id=customer_id, status="joined").order_by("id")
    snaps = await journey.catalog.get_many([p.campaign_id for p in parts])
    for p in parts:
        snap = snaps.get(p.campaign_id)
        if snap is None or snap.goal_metric not in amounts or snap.status not in ("active", "paused", "ended"):
            continue
        if not snap.counts(p.joined_at, occurred_at) or not snap.in_scope(store_id, categories):
            continue
        await _step(journey, p, snap, source, ref, occurred_at, outcome, delta=amounts[snap.goal_metric])


async def _take_back(journey: Journey, purchase: IntegrationEvent, ref: str, at: datetime, outcome: _Outcome) -> int:
    """Reverse what ``purchase`` gave: its progress steps and points. Returns the points
    taken back."""
    given = await ProgressEntry.filter(ref=f"event:{purchase.id}").order_by("id")
    parts = {p.id: p for p in await Participation.filter(id__in=[e.participation_id for e in given])}
    snaps = await journey.catalog.get_many([p.campaign_id for p in parts.values()])
    for entry in given:
        p = parts[entry.participation_id]
        snap = snaps.get(p.campaign_id)
        if snap is not None and entry.delta:
            await _step(journey, p, snap, "refund", ref, at, outcome, delta=-entry.delta)
            if snap.refund_policy == "claw_back" and snap.goal_target:
                [(status, value)] = await Participation.filter(id=p.id).values_list("status", "progress")
                if status == "completed" and value < snap.goal_target:
                    await claw_back(journey.stock, p.id, p.customer_id, ref)
    taken = await points.take_back(purchase.customer_id, f"event:{purchase.id}", "refund", ref)
    return -taken.delta if taken else 0


async def _resolve_customer(spec: EventSpec) -> int:
    # An erased customer is nobody any more: events naming it are refused like unknown ones.
    if spec.customer_id is not None:
        found = await column(Customer.filter(id=spec.customer_id, erased_at__isnull=True), "id")
    else:
        found = await column(Customer.filter(openid=spec.openid, erased_at__isnull=True), "id")
    if not found:
        raise errors.UnknownCustomer(details={"customer_id": spec.customer_id, "openid": spec.openid})
    return int(found[0])


async def ingest(journey: Journey, integration_id: int, spec: EventSpec) -> tuple[dict[str, Any], bool]:
    """Apply one event; returns its result and whether it is new (False: a replay)."""
    customer_id = await _resolve_customer(spec)
    if spec.store_id is not None and not await Store.filter(id=spec.store_id).exists():
        raise errors.UnknownStore(f"no store with id {spec.store_id}", details={"store_ids": [spec.store_id]})
    body_hash = spec.body_hash()
    outcome = _Outcome()
    async with in_transaction():
        await _lock_customer(customer_id)
        try:
            async with in_transaction():
                event = await IntegrationEvent.create(
                    integration_id=integration_id, external_id=spec.external_id, type=spec.type,
                    customer_id=customer_id, occurred_at=spec.occurred_at, amount=spec.amount,
                    order_ref=spec.order_ref, store_id=spec.store_id, categories=list(spec.categories),
                    refund_of=spec.refund_of, body_hash=body_hash,
                    status="pending" if spec.type == "refund" else "applied",
                )  # fmt: skip
        except IntegrityError:
            event = None
        if event is None:
            first = await IntegrationEvent.get(integration_id=integration_id, external_id=spec.external_id)
            if first.body_hash != body_hash:
                raise errors.EventConflict(details={"external_id": spec.external_id, "event_id": first.id})
            return {**first.result, "replayed": True}, False
        result = await _apply(journey, integration_id, event, spec, customer_id, outcome)
        result.update(event_id=event.id, external_id=event.external_id, type=event.type, progress=outcome.progress)
        await IntegrationEvent.filter(id=event.id).update(result=result)
    if spec.type in ("purchase", "refund"):  # what they bought ranks the feed
        await viewer_changed(journey.redis, customer_id)
    if outcome.tier is not None:  # the audiences and the feed ranking follow the new tier
        await tiers.after_commit(journey, outcome.tier, [])
    await journey.rewards.issue_pending(outcome.grant_ids)
    await automation.execute(journey, outcome.run_ids)
    return {**result, "replayed": False}, True


async def _apply(
    journey: Journey, integration_id: int, event: IntegrationEvent, spec: EventSpec, customer_id: int,
    outcome: _Outcome,
) -> dict[str, Any]:  # fmt: skip
    day = spec.occurred_at.date()
    ref = f"event:{event.id}"
    if spec.type == "profile":
        assert spec.tier is not None  # the handler's schema requires it
        changed, run_ids = await tiers.change_in_transaction(
            customer_id, spec.tier, source=tiers.TierSource("integration", integration_id=integration_id),
            reason=f"event {spec.external_id}", actor=audit.Actor.system(),
        )  # fmt: skip
        outcome.tier = changed
        outcome.run_ids += run_ids
        return {
            "status": "applied", "points": 0,
            "tier": {"from_tier": changed.from_tier, "to_tier": changed.to_tier, "changed": changed.changed},
        }  # fmt: skip
    if spec.type == "visit":
        await record_activity(customer_id, day, visits=1, store_id=spec.store_id)
        await _feed(journey, customer_id, {"visits": 1}, "visit", ref, spec.occurred_at, spec.store_id, (), outcome)
        return {"status": "applied", "points": 0}
    if spec.type == "purchase":
        waiting = await IntegrationEvent.filter(
            integration_id=integration_id, type="refund", refund_of=spec.external_id, status="pending"
        ).first()
        if waiting is not None:
            if waiting.customer_id != customer_id:
                raise _refund_mismatch("purchase", spec.external_id)
            # Refunded before it arrived: recorded, and it gives nothing.
            await IntegrationEvent.filter(id=event.id).update(status="refunded")
            await IntegrationEvent.filter(id=waiting.id).update(status="applied")
            return {"status": "refunded", "points": 0, "refunded_by": waiting.external_id}
        # The customer's row is locked: no other purchase of theirs is being counted.
        first = not await CustomerFacts.filter(customer_id=customer_id, purchases_total__gt=0).exists()
        await record_activity(customer_id, day, spend=spec.amount, purchases=1, store_id=spec.store_id)
        if first:
            outcome.run_ids += await automation_runs.fire("first_purchase", customer_id, {"event_id": event.id})
        await _feed(
            journey, customer_id, {"spend": spec.amount, "purchases": 1}, "purchase", ref, spec.occurred_at,
            spec.store_id, spec.categories, outcome,
        )  # fmt: skip
        await attribution.attribute(
            event_id=event.id, customer_id=customer_id, order_ref=spec.order_ref, store_id=spec.store_id,
            amount=spec.amount, occurred_at=spec.occurred_at,
            window=timedelta(days=journey.policy.attribution_window_days),
        )  # fmt: skip
        earned = spec.amount * journey.policy.points_per_yuan // 100
        if earned:
            await points.add(customer_id, earned, "purchase", ref)
        return {"status": "applied", "points": earned}
    # A refund.
    await record_activity(customer_id, day)
    purchase = await IntegrationEvent.filter(
        integration_id=integration_id, external_id=spec.refund_of, type="purchase"
    ).first()
    if purchase is None:
        return {"status": "pending", "points": 0}
    if purchase.customer_id != customer_id:
        raise _refund_mismatch("refund_of", spec.refund_of or "")
    await IntegrationEvent.filter(id=event.id).update(status="applied")
    took = await IntegrationEvent.filter(id=purchase.id, status="applied").update(status="refunded")
    if not took:
        return {"status": "applied", "points": 0, "already_refunded": True}
    taken = await _take_back(journey, purchase, f"refund:{event.id}", spec.occurred_at, outcome)
    return {"status": "applied", "points": -taken}


def _refund_mismatch(field: str, external_id: str) -> errors.AppError:
    return errors.ValidationFailed(
        f"{field}: purchase {external_id!r} belongs to another customer",
        details={"errors": [{"field": field, "message": "belongs to another customer", "type": "mismatch"}]},
    )


# --- referrals ------------------------------------------------------------------------


async def credit_referral(
    journey: Journey, inviter_id: int, ref: str, at: datetime
) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """A customer the inviter brought in: every joined participation of the inviter with
    the ``referrals`` goal, whose window holds ``at``, steps by one (``ref`` names the
    referral, once per participation). Returns the progress made, the ids of the reward
    grants decided and of the automation runs recorded (issue and execute them after the
    commit). Precondition: call inside the transaction that records the referral."""
    outcome = _Outcome()
    async with in_transaction():
        await _lock_customer(inviter_id)
        await _feed(journey, inviter_id, {"referrals": 1}, "referral", ref, at, None, (), outcome)
    return outcome.progress, outcome.grant_ids, outcome.run_ids


# --- check-ins ------------------------------------------------------------------------


async def checkin(journey: Journey, customer_id: int, now: datetime) -> tuple[CheckIn, list[dict[str, Any]], bool]:
    """Check in for today (UTC): the check-in, the progress it made, and whether it is
    new (a second check-in the same day returns the first)."""
    today = now.date()
    outcome = _Outcome()
    async with in_transaction():
        await _lock_customer(customer_id)
        existing = await CheckIn.get_or_none(customer_id=customer_id, day=today)
        if existing is not None:
            return existing, [], False
        previous = await CheckIn.get_or_none(customer_id=customer_id, day=today - timedelta(days=1))
        streak = previous.streak + 1 if previous else 1
        try:
            async with in_transaction():
                row = await CheckIn.create(customer_id=customer_id, day=today, streak=streak)
        except IntegrityError:
            return await CheckIn.get(customer_id=customer_id, day=today), [], False
        await record_activity(customer_id, today)
        parts = await Participation.filter(customer_id=customer_id, status="joined").order_by("id")
        snaps = await journey.catalog.get_many([p.campaign_id for p in parts])
        for p in parts:
            snap = snaps.get(p.campaign_id)
            if snap is None or snap.goal_metric != "checkin_streak" or not snap.counts(p.joined_at, now):
                continue
            # Only the days since joining count towards the streak goal.
            days_in = (today - max(p.joined_at, snap.starts_at).date()).days + 1
            await _step(
                journey, p, snap, "checkin", f"checkin:{today.isoformat()}", now, outcome, set_to=min(streak, days_in)
            )
    await journey.rewards.issue_pending(outcome.grant_ids)
    await automation.execute(journey, outcome.run_ids)
    return row, outcome.progress, True
