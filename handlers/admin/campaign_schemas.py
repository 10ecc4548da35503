"""Response and action schemas of the campaign builder (requests: services.campaigns.spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, create_model
from pydantic.fields import FieldInfo

from handlers.common.schemas import GoalOut
from services.campaigns import CampaignIn, CampaignStatus, CampaignType, Channel, RefundPolicy
from services.core import Body, CouponFace, Id, Out, Query


class CouponOut(Out, CouponFace):
    id: int
    total_stock: int
    per_user_limit: int
    grab_starts_at: datetime | None
    validity: dict[str, Any]
    store_ids: list[int] | None
    channels: list[str] | None
    points_price: int | None = Field(description="points for one voucher; null: not exchangeable")
    stock_buckets: int = Field(description="Redis slots the stock is split over (1: not a hot coupon)")


class CampaignOut(Out):
    id: int
    type: str
    status: str
    version: int = Field(description="send it back as `version` to make an edit or decision conditional")
    theme_id: int | None
    content: dict[str, dict[str, str | int]]
    default_language: str
    tags: list[str]
    categories: list[str]
    banner_media_id: int | None
    poster_media_id: int | None
    visible_from: datetime | None
    starts_at: datetime
    ends_at: datetime
    redeem_until: datetime | None
    channels: list[str]
    store_ids: list[int] | None
    visibility: str
    audience_rule: dict[str, Any] | None
    participant_cap: int | None
    per_user_limit: int
    goal: GoalOut | None
    reward_points: int
    reward_badge: str | None
    refund_policy: RefundPolicy
    budget_limit: int | None
    budget_spent: int
    coupons: list[CouponOut]
    group: dict[str, Any] | None = Field(
        default=None, description="a group_buy's rules (the `group` block as sent); null for the other types"
    )
    bargain: dict[str, Any] | None = Field(
        default=None, description="bargain and assist campaigns: the help rules (BargainSpec); null for the others"
    )
    red_packet: dict[str, Any] | None = Field(
        default=None, description="red_packet campaigns: the packet's rules (RedPacketSpec); null for the others"
    )
    draw: dict[str, Any] | None = Field(
        default=None, description="a lucky_draw's prize table and entry costs, as sent (null for other types)"
    )
    review_levels: int
    review_level_done: int
    created_by: int
    submitted_by: int | None
    submitted_at: datetime | None
    activated_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignSummaryOut(Out):
    id: int
    type: str
    status: str
    version: int
    title: str
    theme_id: int | None
    starts_at: datetime
    ends_at: datetime
    visibility: str
    channels: list[str]
    tags: list[str]
    budget_limit: int | None
    budget_spent: int


class CampaignPageOut(Out):
    items: list[CampaignSummaryOut]
    next_cursor: str | None


class CampaignListQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)
    status: CampaignStatus | None = None
    type: CampaignType | None = None
    store_id: Id | None = None
    channel: Channel | None = None
    tag: str | None = Field(default=None, max_length=32)
    theme_id: Id | None = None
    active_from: datetime | None = Field(default=None, description="running at or after this time")
    active_to: datetime | None = Field(default=None, description="running before this time")


def _optional_fields() -> dict[str, Any]:
    """Every builder field, optional: a patch names only what it changes."""
    fields: dict[str, Any] = {}
    for name, info in CampaignIn.model_fields.items():
        copy = FieldInfo.merge_field_infos(info)
        copy.default, copy.default_factory = None, None
        assert info.annotation is not None  # a model class's fields are all annotated
        fields[name] = (info.annotation | None, copy)
    return fields


CampaignPatchIn = create_model(
    "CampaignPatchIn",
    __base__=Body,
    __doc__="Any subset of the builder's fields (each validated as on create); `version` makes the edit conditional.",
    version=(int | None, Field(default=None, ge=1)),
    **_optional_fields(),
)


class DecisionIn(Body):
    version: int | None = Field(default=None, ge=1)
    comment: str = Field(default="", max_length=1000)


class CommentRequiredIn(Body):
    version: int | None = Field(default=None, ge=1)
    comment: str = Field(min_length=1, max_length=1000)


class TransitionIn(Body):
    version: int | None = Field(default=None, ge=1)


class ReviewEventOut(Out):
    action: str
    level: int
    actor_id: int
    comment: str
    created_at: datetime


class ReviewTrailOut(Out):
    items: list[ReviewEventOut]


class FieldChangeOut(Out):
    field: str = Field(description="a top-level field of the campaign spec (coupons compare as one list)")
    old: Any = Field(description="its value in the last approved version (JSON, as the builder sends it)")
    new: Any = Field(description="its value now")


class ApprovalDiffOut(Out):
    approved: bool = Field(description="false when the campaign was never approved: then there is nothing to diff")
    changes: list[FieldChangeOut]


class CouponMonitorOut(Out):
    template_id: int
    total_stock: int
    stock_left: int | None = Field(description="null: the coupon's stock is not in Redis (not loaded yet)")
    issued: int | None = Field(description="total_stock less stock_left (vouchers given back count as not issued)")
    refusals: dict[str, int] = Field(
        description="grab refusals by reason counted by the grab script since the stock was loaded: "
        "not_active, not_started, ended, not_eligible, limit, sold_out, budget, rate_limited"
    )


class CampaignMonitorOut(Out):
    campaign_id: int
    budget_limit: int | None
    budget_left: int | None = Field(description="fen left in Redis; null: no cap or not loaded")
    coupons: list[CouponMonitorOut]
