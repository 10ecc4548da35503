"""Campaigns, their themes, stores, coupon templates, exclusivity and budget top-ups."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

CAMPAIGN_TYPES = (
    "offer", "flash_sale", "challenge", "event", "referral", "group_buy", "bargain", "assist", "red_packet",
    "lucky_draw",
)  # fmt: skip
CAMPAIGN_STATUSES = (
    "draft",
    "in_review",
    "returned",
    "rejected",
    "approved",
    "scheduled",
    "active",
    "paused",
    "ended",
    "archived",
)
VISIBILITIES = ("public", "targeted", "hidden")
CHANNELS = ("miniprogram", "pos", "h5", "app", "offline")
GOAL_METRICS = ("visits", "spend", "purchases", "checkin_streak", "referrals")
COUPON_KINDS = ("fixed", "percent", "threshold", "free_item")


class Theme(Model):
    """Groups campaigns under one name (e.g. "Women's Day") for reporting and review."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    description = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "themes"


class Campaign(Model):
    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=16)
    status = fields.CharField(max_length=16, default="draft")
    # Bumped on every change: edits and review decisions are compare-and-set on it.
    version = fields.IntField(default=1)
    theme: fields.ForeignKeyNullableRelation[Theme] = fields.ForeignKeyField(
        "models.Theme", null=True, on_delete=fields.RESTRICT, related_name="campaigns"
    )
    theme_id: int | None
    # {"zh-CN": {"title", "summary", "benefits", "how_to_join", "terms"}, "en": {...}}
    content = fields.JSONField[dict[str, Any]](default=dict)
    default_language = fields.CharField(max_length=8, default="zh-CN")
    tags = fields.JSONField[list[Any]](default=list)
    categories = fields.JSONField[list[Any]](default=list)
    banner_media_id = fields.BigIntField(null=True)
    poster_media_id = fields.BigIntField(null=True)
    visible_from = fields.DatetimeField(null=True)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    redeem_until = fields.DatetimeField(null=True)
    channels = fields.JSONField[list[Any]](default=list)
    all_stores = fields.BooleanField(default=True)
    visibility = fields.CharField(max_length=16, default="public")
    audience_rule = fields.JSONField[dict[str, Any] | None](null=True)
    participant_cap = fields.IntField(null=True)
    per_user_limit = fields.IntField(default=1)
    goal_metric = fields.CharField(max_length=16, null=True)
    goal_target = fields.BigIntField(null=True)
    goal_window_days = fields.IntField(null=True)
    reward_points = fields.IntField(default=0)
    reward_badge = fields.CharField(max_length=32, null=True)
    # What a refund that takes a completed goal back below its target does to the reward:
    # claw_back (points and unused reward vouchers taken back) or keep.
    refund_policy = fields.CharField(max_length=16, default="claw_back")
    # Money in fen. budget_limit None = no cap; budget_spent counts issued face value.
    budget_limit = fields.BigIntField(null=True)
    budget_spent = fields.BigIntField(default=0)
    # Review: how many levels this submission needs, and how many have approved.
    review_levels = fields.IntField(default=0)
    review_level_done = fields.IntField(default=0)
    # The reviewable spec (CampaignIn-shaped JSON) as it was when the campaign last became
    # approved; None until then. The review page diffs the current spec against it.
    approved_spec = fields.JSONField[dict[str, Any] | None](null=True)
    # A group_buy's rules (services.campaigns.spec.GroupSpec as JSON); None for other types.
    group_spec = fields.JSONField[dict[str, Any] | None](null=True)
    # bargain and assist campaigns: their BargainSpec (services/campaigns/spec.py) as JSON.
    bargain = fields.JSONField[dict[str, Any] | None](null=True)
    # red_packet campaigns: their RedPacketSpec as JSON.
    red_packet = fields.JSONField[dict[str, Any] | None](null=True)
    # A lucky_draw's prize table and entry costs (services.campaigns.spec.DrawIn as JSON;
    # a prize's coupon_index counts the campaign's coupons in id order). None otherwise.
    draw = fields.JSONField[dict[str, Any] | None](null=True)
    created_by = fields.BigIntField()
    submitted_by = fields.BigIntField(null=True)
    submitted_at = fields.DatetimeField(null=True)
    activated_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaigns"
        indexes = (
            Index(fields=("status", "starts_at"), name="idx_campaigns_status_start"),
            Index(fields=("status", "ends_at"), name="idx_campaigns_status_end"),
            Index(fields=("type",), name="idx_campaigns_type"),
            Index(fields=("theme_id",), name="idx_campaigns_theme"),
            # Covers the analytics overview's "live in the range" condition and what its
            # ranking reads of each campaign, so ranking 10,000 live campaigns reads this
            # index, not the wide rows (their content and specs).
            Index(
                fields=("status", "ends_at", "starts_at", "ended_at", "budget_spent", "type"),
                name="idx_campaigns_live_rank",
            ),
        )


class CampaignStore(Model):
    """The stores of a campaign whose ``all_stores`` is false."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.CASCADE, related_name="store_links"
    )
    campaign_id: int
    store: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Store", on_delete=fields.RESTRICT, related_name="campaign_links"
    )
    store_id: int

    class Meta:
        table = "campaign_stores"
        unique_together = (("campaign", "store"),)
        indexes = (Index(fields=("store_id",), name="idx_campaign_stores_store"),)


class CouponTemplate(Model):
    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.RESTRICT, related_name="coupons"
    )
    campaign_id: int
    kind = fields.CharField(max_length=16)
    # {"zh-CN": "...", "en": "..."}
    title = fields.JSONField[dict[str, Any]](default=dict)
    # fixed/threshold: the amount off; percent: the cap on the discount; free_item: the
    # item's value. All in fen; it is what the budget counts per coupon.
    face_value = fields.BigIntField()
    percent_off = fields.IntField(null=True)
    min_spend = fields.BigIntField(default=0)
    item_name = fields.CharField(max_length=64, null=True)
    total_stock = fields.IntField()
    per_user_limit = fields.IntField(default=1)
    # When grabbing opens (flash sales: the exact second); None = the campaign's start.
    grab_starts_at = fields.DatetimeField(null=True)
    validity_kind = fields.CharField(max_length=16)  # "fixed" or "relative"
    valid_from = fields.DatetimeField(null=True)
    valid_until = fields.DatetimeField(null=True)
    valid_days = fields.IntField(null=True)
    # None = wherever the campaign runs.
    store_ids = fields.JSONField[list[Any] | None](null=True)
    channels = fields.JSONField[list[Any] | None](null=True)
    # Points a customer may pay for one (POST /api/v1/me/points/exchange). None = not for points.
    points_price = fields.IntField(null=True)
    # A hot coupon's stock is split over this many Redis slots (services/stock/hot.py);
    # 1 = one slot, as every other coupon. Fixed once the campaign is published.
    stock_buckets = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "coupon_templates"
        indexes = (Index(fields=("campaign_id",), name="idx_coupon_templates_campaign"),)


class ExclusivityLink(Model):
    """Two campaigns a customer may not take part in both of, stored once with the low id first."""

    id = fields.BigIntField(primary_key=True)
    campaign_low: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.CASCADE, related_name="exclusive_as_low"
    )
    campaign_low_id: int
    campaign_high: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.CASCADE, related_name="exclusive_as_high"
    )
    campaign_high_id: int
    created_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "campaign_exclusivity"
        unique_together = (("campaign_low", "campaign_high"),)


class BudgetTopUp(Model):
    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.RESTRICT, related_name="topups"
    )
    campaign_id: int
    amount = fields.BigIntField()
    reason = fields.CharField(max_length=500, default="")
    status = fields.CharField(max_length=16, default="pending")  # pending, approved, rejected
    requested_by = fields.BigIntField()
    decided_by = fields.BigIntField(null=True)
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "budget_topups"


class ReviewEvent(Model):
    """The review trail of a campaign: submissions and each level's decision."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.CASCADE, related_name="review_events"
    )
    campaign_id: int
    action = fields.CharField(max_length=16)  # submit, approve, reject, return
    level = fields.IntField(default=0)
    actor_id = fields.BigIntField()
    comment = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "campaign_review_events"
        indexes = (Index(fields=("campaign_id",), name="idx_review_events_campaign"),)


class CampaignLabel(Model):
    """Tags, channels and categories of a campaign as rows, so lists can filter on them
    with an index on both databases (the JSON columns are what responses read)."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.CASCADE, related_name="labels"
    )
    campaign_id: int
    kind = fields.CharField(max_length=16)  # tag, channel, category
    value = fields.CharField(max_length=64)

    class Meta:
        table = "campaign_labels"
        unique_together = (("campaign", "kind", "value"),)
        indexes = (Index(fields=("kind", "value"), name="idx_campaign_labels_value"),)
