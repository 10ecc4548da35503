"""What an automation rule does, by action name: ``ACTIONS`` maps each to its handler.

A handler gets the run and the rule's action parameters and answers an ``Outcome``:
``done`` or ``refused`` (with the reason: it is recorded, never retried). It raises
``Later`` when it cannot finish now but will (Redis unreachable): the run stays pending.
Handlers must be idempotent: after a crash, or when a lease lapses, a run may be executed
again, and must then act once.

Adding an action: a model in ``services.automation.spec.Action`` and a handler here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.automation import AutomationRun
from models.campaigns import Campaign, CouponTemplate
from models.journey import RewardGrant
from services.core import errors
from services.journey import Journey
from services.journey import participation as journey
from services.notify import outbox as notify_outbox

#: Campaign states whose coupons an automation may issue (reviewed and not over).
LIVE_STATES = frozenset({"scheduled", "active", "paused"})
GRANT_TRIGGER = "automation"


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "refused"]
    details: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None


class Later(Exception):
    """The action cannot finish now and will later: not a failure."""


ActionHandler = Callable[[Journey, AutomationRun, dict[str, Any]], Awaitable[Outcome]]


def grant_ref(rule_id: int, customer_id: int) -> str:
    """The ref of a rule's coupon grant to a customer (unique, like the run)."""
    return f"automation:{rule_id}:{customer_id}"


async def issue_coupon(j: Journey, run: AutomationRun, params: dict[str, Any]) -> Outcome:
    """One voucher of ``coupon_id`` through a RewardGrant and the stock path (stock,
    per-customer limit, budget, claims stream), as a campaign reward is issued."""
    coupon_id = int(params["coupon_id"])
    ref = grant_ref(run.rule_id, run.customer_id)
    grant = await RewardGrant.get_or_none(ref=ref)
    if grant is None:
        template = await CouponTemplate.get_or_none(id=coupon_id)
        if template is None:
            return Outcome("refused", {"coupon_id": coupon_id}, "no_coupon")
        status = await Campaign.filter(id=template.campaign_id).values_list("status", flat=True)
        if not status or status[0] not in LIVE_STATES:
            details = {"coupon_id": coupon_id, "campaign_status": status[0] if status else None}
            return Outcome("refused", details, "campaign_not_active")
        try:
            async with in_transaction():
                grant = await RewardGrant.create(
                    participation_id=None, ref=ref, customer_id=run.customer_id,
                    campaign_id=template.campaign_id, template_id=template.id,
                    trigger=GRANT_TRIGGER,
                )  # fmt: skip
        except IntegrityError:
            grant = await RewardGrant.get(ref=ref)  # made by a concurrent execution of this run
    if grant.status == "pending":
        await j.rewards.issue_pending([grant.id])
        grant = await RewardGrant.get(id=grant.id)
    details = {"coupon_id": grant.template_id, "grant_id": grant.id}
    if grant.status == "issued":
        return Outcome("done", {**details, "claim_id": grant.claim_id})
    if grant.status == "refused":
        return Outcome("refused", details, grant.refusal)
    raise Later("the coupon grant is still pending (Redis unreachable?)")


async def enrol(j: Journey, run: AutomationRun, params: dict[str, Any]) -> Outcome:
    """Join the customer to ``campaign_id`` through the join route's own service: the
    campaign's state, audience, exclusivity and cap apply, and its join rewards."""
    campaign_id = int(params["campaign_id"])
    try:
        participation, created = await journey.join(j, campaign_id, run.customer_id, datetime.now(UTC))
    except errors.AppError as exc:
        if exc.status >= 500:
            raise Later(exc.message) from exc
        return Outcome("refused", {"campaign_id": campaign_id, "message": exc.message, **exc.details}, exc.code)
    return Outcome("done", {"campaign_id": campaign_id, "participation_id": participation.id, "joined": created})


async def notify(j: Journey, run: AutomationRun, params: dict[str, Any]) -> Outcome:
    """Queue a subscribe message about ``campaign_id`` (kind ``new_campaign``, key
    ``automation:<rule>:<customer>``) in the notifications outbox; its sender delivers it
    if the customer holds an allowance, or records why not. The campaign must be visible
    to customers (scheduled or active, not hidden, offered in the mini program)."""
    campaign_id = int(params["campaign_id"])
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        return Outcome("refused", {"campaign_id": campaign_id}, "no_campaign")
    if campaign.status not in ("scheduled", "active"):
        return Outcome("refused", {"campaign_id": campaign_id, "status": campaign.status}, "campaign_not_active")
    if campaign.visibility == "hidden" or "miniprogram" not in (campaign.channels or []):
        return Outcome("refused", {"campaign_id": campaign_id}, "not_announced")
    key = grant_ref(run.rule_id, run.customer_id)
    added = await notify_outbox.enqueue(
        key, "new_campaign", run.customer_id,
        {
            "campaign_id": campaign.id,
            "campaign_title": notify_outbox.title_of(campaign.content, campaign.default_language),
            "starts_at": campaign.starts_at.isoformat(), "ends_at": campaign.ends_at.isoformat(),
        },
    )  # fmt: skip
    return Outcome("done", {"campaign_id": campaign_id, "notification_key": key, "queued": added})


ACTIONS: dict[str, ActionHandler] = {
    "issue_coupon": issue_coupon,
    "enrol": enrol,
    "notify": notify,
}
