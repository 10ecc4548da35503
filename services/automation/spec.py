"""What an admin sends to set up an automation rule: a trigger and an action, each a
tagged object (``{"type": ..., params}``) validated strictly by its own model, so an
unknown type or a misplaced parameter is a 422 naming the field.

Adding an action means adding its model to ``Action`` and its handler to
``services.automation.actions.ACTIONS``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from services.core import Body, Id


class Registered(Body):
    type: Literal["registered"]


class FirstPurchase(Body):
    type: Literal["first_purchase"]


class CampaignCompleted(Body):
    type: Literal["campaign_completed"]
    campaign_id: Id | None = Field(default=None, description="only when this campaign is completed (null: any)")


class InactiveForDays(Body):
    type: Literal["inactive_for_days"]
    days: int = Field(ge=1, le=3650, description="no purchase, visit, check-in or login for this many days")


class VoucherExpiring(Body):
    type: Literal["voucher_expiring"]
    hours: int | None = Field(
        default=None, ge=1, le=24 * 365,
        description="a voucher of the customer expires within this many hours (null: VOUCHER_REMINDER_HOURS)",
    )  # fmt: skip


class TierChanged(Body):
    type: Literal["tier_changed"]
    tier: Literal["standard", "silver", "gold", "platinum"] | None = Field(
        default=None, description="only when the customer's new tier is this one (null: any change)"
    )


Trigger = Annotated[
    Registered | FirstPurchase | CampaignCompleted | InactiveForDays | VoucherExpiring | TierChanged,
    Field(discriminator="type"),
]


class IssueCoupon(Body):
    type: Literal["issue_coupon"]
    coupon_id: Id = Field(description="one voucher of this coupon, through its stock, per-customer limit and budget")


class Enrol(Body):
    type: Literal["enrol"]
    campaign_id: Id = Field(description="join the customer to this campaign, as the join route does")


class Notify(Body):
    type: Literal["notify"]
    campaign_id: Id = Field(
        description="send the customer a subscribe message about this campaign (the new_campaign template), "
        "if they hold an allowance for it"
    )


Action = Annotated[IssueCoupon | Enrol | Notify, Field(discriminator="type")]


class RuleIn(Body):
    name: str = Field(min_length=1, max_length=100)
    trigger: Trigger
    action: Action
    enabled: bool = True


class RulePatchIn(Body):
    """Any subset of the fields. The trigger's type is fixed once created (runs are per
    rule): its parameters may change."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    trigger: Trigger | None = None
    action: Action | None = None
    enabled: bool | None = None


def params_of(model: Body) -> dict[str, Any]:
    """A trigger's or action's parameters as stored (everything but its type)."""
    return model.model_dump(exclude={"type"})
