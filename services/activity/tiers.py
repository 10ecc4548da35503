"""Membership tiers: set by customer service or synced by a CRM's ``profile`` event.

A change is one transaction that locks the customer's row (as events do), moves the tier
with a compare-and-set on the tier it read, records a ``TierChange`` with its source (the
admin, or the integration) and the audit entry, and records the runs of the
``tier_changed`` automation rules (services.automation.runs: at most once per rule and
customer). Setting the tier the customer already has changes nothing and records nothing.

After the commit the customer's feed follows at once: each live targeted campaign's
audience is checked again for this customer (one rule query each) and its Redis sets (the
feed's and the grab's) gain or lose them, and the viewer's version is bumped, so the next
feed request ranks again with the new tier (a campaign for gold members appears or goes).
Then the automation runs are executed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer, TierChange
from services.audience import rules as audience
from services.automation import engine as automation
from services.automation import runs as automation_runs
from services.core import audit, column, errors
from services.feed import set_member, viewer_changed
from services.journey import Journey

log = logging.getLogger("wxcampaign.tiers")

#: Campaign states whose audience sets the feed and the grab read.
LIVE = ("scheduled", "active", "paused")


@dataclass(frozen=True)
class TierSource:
    """Where a change comes from: an admin (``admin_id``) or an integration."""

    kind: str  # admin, integration
    admin_id: int | None = None
    integration_id: int | None = None


@dataclass(frozen=True)
class TierOutcome:
    customer_id: int
    from_tier: str
    to_tier: str
    changed: bool
    change_id: int | None


async def _lock(customer_id: int) -> Customer:
    customer = await Customer.filter(id=customer_id).select_for_update(no_key=True).first()
    if customer is None:
        raise errors.NotFound(f"no customer {customer_id}")
    return customer


async def change_in_transaction(
    customer_id: int, tier: str, *, source: TierSource, reason: str, actor: audit.Actor
) -> tuple[TierOutcome, list[int]]:
    """Set the tier inside the caller's transaction; the outcome and the automation runs
    to execute after the commit (then call ``after_commit``). Precondition: ``tier`` is
    one of models.customers.MEMBERSHIP_TIERS."""
    async with in_transaction():
        customer = await _lock(customer_id)
        before = customer.membership_tier
        if before == tier:
            return TierOutcome(customer_id, before, tier, False, None), []
        moved = await Customer.filter(id=customer_id, membership_tier=before).update(membership_tier=tier)
        if not moved:  # SQLite takes no row lock: another change won meanwhile
            raise errors.Conflict("the tier changed meanwhile: try again", details={"customer_id": customer_id})
        change = await TierChange.create(
            customer_id=customer_id, from_tier=before, to_tier=tier, source=source.kind, admin_id=source.admin_id,
            integration_id=source.integration_id, reason=reason,
        )  # fmt: skip
        await audit.record(
            actor, "customer.tier", "customer", customer_id,
            {"membership_tier": before},
            {"membership_tier": tier, "source": source.kind, "integration_id": source.integration_id,
             "reason": reason, "tier_change_id": change.id},
        )  # fmt: skip
        run_ids = await automation_runs.fire(
            "tier_changed", customer_id, {"from": before, "to": tier, "source": source.kind, "change_id": change.id}
        )
    return TierOutcome(customer_id, before, tier, True, change.id), run_ids


async def after_commit(journey: Journey, outcome: TierOutcome, run_ids: list[int]) -> None:
    """The feed and grab audiences, the feed ranking and the automation runs of a
    committed change (see the module docstring). Never raises for the audiences: a set
    left behind is rebuilt from the rule within its lifetime."""
    if not outcome.changed:
        return
    try:
        await refresh_audiences(journey, outcome.customer_id)
    except Exception:
        log.exception("tier change of customer %d: audience sets left to their rebuild", outcome.customer_id)
    await viewer_changed(journey.redis, outcome.customer_id)
    await automation.execute(journey, run_ids)


async def refresh_audiences(journey: Journey, customer_id: int) -> int:
    """Check each live targeted campaign's rule for this customer again and put them in
    or out of its Redis audience sets; how many campaigns were checked."""
    rows = await Campaign.filter(status__in=LIVE, visibility="targeted").values_list("id", "audience_rule")
    # Only the grab reads the stock's audience set: none for a campaign without coupons.
    with_coupons = set(await column(CouponTemplate.filter(campaign_id__in=[r[0] for r in rows]), "campaign_id"))
    checked = 0
    for campaign_id, rule in rows:
        if rule is None:
            continue
        member = await audience.matches(rule, customer_id)
        await set_member(journey.redis, int(campaign_id), customer_id, member)
        if campaign_id in with_coupons:
            await journey.stock.set_audience_member(int(campaign_id), customer_id, member)
        checked += 1
    return checked


async def change_tier(
    journey: Journey, customer_id: int, tier: str, *, source: TierSource, reason: str, actor: audit.Actor
) -> TierOutcome:
    """Set a customer's tier (see the module docstring): its own transaction, then the
    feed and the automation runs."""
    outcome, run_ids = await change_in_transaction(customer_id, tier, source=source, reason=reason, actor=actor)
    await after_commit(journey, outcome, run_ids)
    return outcome
