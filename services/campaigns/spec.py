"""What an operator sends to build a campaign, and the rules a campaign must satisfy.

Field-level rules live on the models (types, ranges; a failure is a 422 naming the
field); rules that relate several fields (the schedule, the budget against the coupons)
are checked by ``check_consistency`` and answer with their own codes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from services.core import Body, Id, errors

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=32, strip_whitespace=True)]
CampaignType = Literal[
    "offer", "flash_sale", "challenge", "event", "referral", "group_buy", "bargain", "assist", "red_packet",
    "lucky_draw",
]  # fmt: skip
#: The campaign types whose spec is a ``bargain`` block (services/forms/bargain.py).
BARGAIN_TYPES = frozenset({"bargain", "assist"})
#: What a refund taking a completed goal back below its target does to the reward.
RefundPolicy = Literal["claw_back", "keep"]
#: The lifecycle states (models.campaigns.CAMPAIGN_STATUSES), for filters: an unknown one is a 422.
CampaignStatus = Literal[
    "draft", "in_review", "returned", "rejected", "approved", "scheduled", "active", "paused", "ended", "archived"
]
Channel = Literal["miniprogram", "pos", "h5", "app", "offline"]
Visibility = Literal["public", "targeted", "hidden"]
CouponKind = Literal["fixed", "percent", "threshold", "free_item"]
GoalMetric = Literal["visits", "spend", "purchases", "checkin_streak", "referrals"]

#: Fields whose change alters only how a campaign reads, not what it does.
COPY_FIELDS = frozenset({"content", "default_language", "tags", "banner_media_id", "poster_media_id", "theme_id"})
MAX_MONEY = 100_000_000_000  # fen: ¥1,000,000,000, far beyond any real campaign
#: The most Redis slots a hot coupon's stock is split over (services/stock/hot.py).
MAX_STOCK_BUCKETS = 16


class ContentIn(Body):
    title: str = Field(min_length=1, max_length=64)
    summary: str = Field(default="", max_length=200)
    benefits: str = Field(default="", max_length=2000)
    how_to_join: str = Field(default="", max_length=2000)
    terms: str = Field(default="", max_length=8000)
    badge_name: str | None = Field(
        default=None, min_length=1, max_length=32,
        description="the reward badge's display name in this language (null: the badge's key, reward_badge)",
    )  # fmt: skip
    badge_icon_media_id: Id | None = Field(
        default=None, description="the reward badge's icon in this language (an uploaded image's id)"
    )


class FixedValidity(Body):
    kind: Literal["fixed"]
    valid_from: AwareDatetime
    valid_until: AwareDatetime


class RelativeValidity(Body):
    kind: Literal["relative"]
    days: int = Field(ge=1, le=3650, description="valid for N days after claiming")


class CouponIn(Body):
    id: Id | None = Field(default=None, description="set to keep (and update) an existing coupon")
    kind: CouponKind
    title: dict[LanguageCode, Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=10
    )
    face_value: int = Field(
        ge=1, le=MAX_MONEY, description="fen: amount off; for percent the cap; for free_item the item's value"
    )
    percent_off: int | None = Field(default=None, ge=1, le=100)
    min_spend: int = Field(default=0, ge=0, le=MAX_MONEY)
    item_name: str | None = Field(default=None, min_length=1, max_length=64)
    total_stock: int = Field(ge=1, le=10_000_000)
    per_user_limit: int = Field(default=1, ge=1, le=100)
    grab_starts_at: AwareDatetime | None = None
    validity: FixedValidity | RelativeValidity = Field(discriminator="kind")
    store_ids: list[Id] | None = Field(default=None, max_length=500)
    channels: list[Channel] | None = Field(default=None, max_length=5)
    points_price: int | None = Field(
        default=None, ge=1, le=100_000_000,
        description="points for one voucher (POST /api/v1/me/points/exchange); null: not exchangeable",
    )  # fmt: skip
    stock_buckets: int = Field(
        default=1, ge=1, le=MAX_STOCK_BUCKETS,
        description="a hot coupon's stock split over this many Redis slots (docs/stock.md, Hot coupons); "
        "1: one slot. Grabbed only (no points price, not a reward); fixed once the campaign is published",
    )  # fmt: skip

    @model_validator(mode="after")
    def kind_fields(self) -> CouponIn:
        if self.kind == "percent" and self.percent_off is None:
            raise ValueError("a percent coupon needs percent_off (1-100); face_value is its cap")
        if self.kind != "percent" and self.percent_off is not None:
            raise ValueError("percent_off is only for percent coupons")
        if self.kind == "threshold" and self.min_spend <= self.face_value:
            raise ValueError("a threshold coupon needs min_spend above its face_value")
        if self.kind == "free_item" and not self.item_name:
            raise ValueError("a free_item coupon needs item_name")
        if self.stock_buckets > 1 and self.points_price is not None:
            # An exchange is a grant, which decides in the campaign's slot only.
            raise ValueError("a coupon with stock_buckets above 1 cannot have a points_price")
        return self


PrizeKind = Literal["coupon", "points", "none"]
#: The most a lucky draw's weights may add up to: the draw script reduces a 48-bit random
#: value to a weight without bias while the total stays far below 2^48 (services/forms/draw.lua).
MAX_DRAW_WEIGHT_TOTAL = 1_000_000_000


class PrizeIn(Body):
    """One row of a lucky draw's prize table ("no prize" is a row too: kind ``none``)."""

    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,24}$")] = Field(
        description="the prize's name in the table (unique), e.g. `first`, `none`"
    )
    kind: PrizeKind
    label: str | None = Field(
        default=None, min_length=1, max_length=32, description="the prize's name as shown (null: its key)"
    )
    weight: int = Field(ge=0, le=MAX_DRAW_WEIGHT_TOTAL, description="integer weight: odds are weight / total")
    stock: int | None = Field(default=None, ge=0, le=10_000_000, description="how many can be won; null: unlimited")
    coupon_index: int | None = Field(
        default=None, ge=0, le=19, description="kind coupon: the campaign coupon (its index in `coupons`) it pays"
    )
    points: int | None = Field(default=None, ge=1, le=100_000_000, description="kind points: the points it pays")

    @model_validator(mode="after")
    def kind_fields(self) -> PrizeIn:
        if (self.kind == "coupon") != (self.coupon_index is not None):
            raise ValueError("coupon_index is required for a coupon prize and only for one")
        if (self.kind == "points") != (self.points is not None):
            raise ValueError("points is required for a points prize and only for one")
        return self


class DrawIn(Body):
    """A lucky draw's table and entry costs (docs/forms.md, Lucky draw)."""

    prizes: list[PrizeIn] = Field(min_length=2, max_length=20)
    sold_out_to: str = Field(
        description="the prize (usually the `none` row) that takes a sold-out prize's weight; it must be unlimited"
    )
    free_per_day: int = Field(default=1, ge=0, le=100, description="free draws per customer per day")
    points_cost: int = Field(
        default=0, ge=0, le=100_000_000, description="points for each draw beyond the free ones (0: no paid draws)"
    )
    max_per_day: int = Field(default=10, ge=1, le=1000, description="draws per customer per day, free and paid")
    task_campaign_ids: list[Id] = Field(
        default_factory=list, max_length=20,
        description="tasks as an entry cost: each participation of these campaigns the customer completed buys "
        "one draw (ever, not per day), taken after the day's free draws and before points; empty: none",
    )  # fmt: skip
    time_zone: str = Field(default="Asia/Shanghai", max_length=64, description="where a day starts and ends (IANA)")

    @model_validator(mode="after")
    def table_rules(self) -> DrawIn:
        keys = [p.key for p in self.prizes]
        if len(set(keys)) != len(keys):
            raise ValueError("a prize key appears twice")
        total = sum(p.weight for p in self.prizes)
        if not 1 <= total <= MAX_DRAW_WEIGHT_TOTAL:
            raise ValueError(f"the weights must add up to between 1 and {MAX_DRAW_WEIGHT_TOTAL}")
        target = next((p for p in self.prizes if p.key == self.sold_out_to), None)
        if target is None or target.stock is not None or target.kind == "coupon":
            # A coupon can run out whatever the prize's stock says.
            raise ValueError("sold_out_to must name an unlimited prize of the table that is not a coupon")
        if len(set(self.task_campaign_ids)) != len(self.task_campaign_ids):
            raise ValueError("a task campaign appears twice")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time_zone {self.time_zone!r}") from None
        return self


class GoalIn(Body):
    metric: GoalMetric
    target: int = Field(ge=1, le=MAX_MONEY, description="count, or fen for spend")
    window_days: int | None = Field(default=None, ge=1, le=3650)


#: The largest group a group buy forms (services/forms/group_buy.py).
MAX_GROUP_SIZE = 20
GroupReward = Literal["coupons", "points"]


class GroupSpec(Body):
    """A group buy's rules (type ``group_buy`` only): customers open groups of ``size``
    that others join within ``group_hours``; when one fills, every member is rewarded."""

    size: int = Field(ge=2, le=MAX_GROUP_SIZE, description="members a group needs (the opener included)")
    group_hours: int = Field(ge=1, le=168, description="hours a group stays open after it is opened")
    max_open_per_customer: int = Field(
        default=1, ge=1, le=20, description="open groups (opened or joined) a customer may be in at once, per campaign"
    )
    virtual_fill: bool = Field(
        default=False,
        description="fill an expired group with virtual members (marked as such) instead of failing it",
    )
    reward: GroupReward = Field(
        description="what each real member of a filled group gets: `coupons` (one of each of the campaign's "
        "coupons, through the grab gate's stock and budget) or `points` (reward_points each)"
    )
    reward_points: int | None = Field(default=None, ge=1, le=100_000_000, description="points each, for `points`")

    @model_validator(mode="after")
    def reward_fields(self) -> GroupSpec:
        if self.reward == "points" and self.reward_points is None:
            raise ValueError("a points reward needs reward_points")
        if self.reward != "points" and self.reward_points is not None:
            raise ValueError("reward_points is only for a points reward")
        return self


class BargainSpec(Body):
    """A bargain (砍价: friends cut a price down to a floor) or an assist (助力: friends'
    helps are counted up to ``helpers_needed``). Money in fen. The reward claimed at the
    end (``reward``) is the campaign's own: its coupons (e.g. one for the item at the
    floor price), ``reward_points`` and ``reward_badge``, or (``cut_voucher``, a bargain
    only) one voucher of the campaign's single coupon whose face value is the reduction
    reached, plus the points and badge; docs/forms.md says how cuts are drawn."""

    start_price: int = Field(default=0, ge=0, le=MAX_MONEY, description="fen; the price a bargain starts at")
    floor_price: int = Field(default=0, ge=0, le=MAX_MONEY, description="fen; the price never goes below it")
    cut_min: int = Field(default=1, ge=1, le=MAX_MONEY, description="fen; the smallest cut one help draws")
    cut_max: int = Field(default=1, ge=1, le=MAX_MONEY, description="fen; the largest cut one help draws")
    helpers_needed: int | None = Field(
        default=None, ge=1, le=10_000,
        description="bargain: the helper who makes this many cuts finishes it (takes the rest to the floor); "
        "null: finished when the draws reach the floor. assist: required, the helps that finish it",
    )  # fmt: skip
    help_limit: int = Field(default=1, ge=1, le=100, description="bargains one customer may help per campaign")
    hours: int = Field(default=24, ge=1, le=720, description="hours from its start a bargain may be helped")
    reward: Literal["campaign", "cut_voucher"] = Field(
        default="campaign",
        description="what the claim pays: `campaign` its coupons, reward_points and reward_badge; `cut_voucher` "
        "(bargain only) one voucher of the campaign's single coupon worth the reduction reached (start_price - "
        "the final price, fen), through the coupon's stock and the campaign budget, plus reward_points and "
        "reward_badge",
    )  # fmt: skip


class RedPacketSpec(Body):
    """An expanding red packet (膨胀红包): a packet of ``initial_value`` points that
    friends' helps expand to ``cap``; helps split the difference by double-mean
    (docs/forms.md), each adding at least ``min_increment``. Claimed as points, or
    (``claim_as`` ``voucher``) as one voucher of the campaign's single coupon worth the
    packet's value in fen."""

    initial_value: int = Field(
        ge=0, le=100_000_000, description="points the packet starts with (fen when claim_as is voucher)"
    )
    cap: int = Field(ge=1, le=100_000_000, description="points the packet reaches with helpers_needed helps")
    min_increment: int = Field(default=1, ge=1, le=100_000_000, description="the least one help adds")
    helpers_needed: int = Field(ge=1, le=10_000, description="the helps that expand it to the cap")
    help_limit: int = Field(default=1, ge=1, le=100, description="packets one customer may help per campaign")
    hours: int = Field(default=24, ge=1, le=720, description="hours from its start a packet may be helped")
    claim_as: Literal["points", "voucher"] = Field(
        default="points",
        description="`points`: the packet's value into the points ledger; `voucher`: one voucher of the campaign's "
        "single coupon whose face value is the packet's value (as fen), through the coupon's stock and the "
        "campaign budget",
    )  # fmt: skip


class CampaignIn(Body):
    """A whole campaign as the builder sends it (create), or the merged result of a patch."""

    type: CampaignType
    theme_id: Id | None = None
    content: dict[LanguageCode, ContentIn] = Field(min_length=1, max_length=10)
    default_language: LanguageCode = "zh-CN"
    tags: list[Label] = Field(default_factory=list, max_length=20)
    categories: list[Label] = Field(default_factory=list, max_length=20)
    banner_media_id: Id | None = None
    poster_media_id: Id | None = None
    visible_from: AwareDatetime | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    redeem_until: AwareDatetime | None = None
    channels: list[Channel] = Field(min_length=1, max_length=5)
    store_ids: list[Id] | None = Field(default=None, max_length=500, description="null: every store")
    visibility: Visibility = "public"
    audience_rule: dict[str, Any] | None = None
    participant_cap: int | None = Field(default=None, ge=1, le=100_000_000)
    per_user_limit: int = Field(default=1, ge=1, le=1000)
    goal: GoalIn | None = None
    reward_points: int = Field(default=0, ge=0, le=100_000_000)
    reward_badge: str | None = Field(default=None, min_length=1, max_length=32)
    refund_policy: RefundPolicy = Field(
        default="claw_back",
        description="a refund that takes a completed goal back below its target: `claw_back` takes back the "
        "reward's points (as far as the balance allows) and its unused vouchers, and reopens the participation; "
        "`keep` leaves the reward",
    )
    budget_limit: int | None = Field(default=None, ge=1, le=MAX_MONEY, description="fen; null: no cap")
    coupons: list[CouponIn] = Field(default_factory=list, max_length=20)
    group: GroupSpec | None = Field(
        default=None, description="a group_buy's rules (required for it, refused for the other types)"
    )
    bargain: BargainSpec | None = Field(default=None, description="bargain and assist campaigns: the help rules")
    red_packet: RedPacketSpec | None = Field(default=None, description="red_packet campaigns: the packet's rules")
    draw: DrawIn | None = Field(default=None, description="a lucky_draw's prize table and entry costs")

    @model_validator(mode="after")
    def type_fields(self) -> CampaignIn:
        if self.default_language not in self.content:
            raise ValueError(f"content has no {self.default_language!r} entry (default_language)")
        if self.type == "challenge" and self.goal is None:
            raise ValueError("a challenge needs a goal")
        if self.type != "challenge" and self.goal is not None:
            raise ValueError("only challenges have a goal")
        if self.type == "event" and self.participant_cap is None:
            raise ValueError("an event needs a participant_cap (its capacity)")
        if (self.type == "group_buy") != (self.group is not None):
            raise ValueError("a group_buy needs a group block, and only a group_buy has one")
        if self.group is not None and self.group.reward == "coupons" and not self.coupons:
            raise ValueError("a group buy rewarding coupons needs at least one coupon")
        if self.type == "flash_sale" and not self.coupons:
            raise ValueError("a flash sale needs at least one coupon")
        _check_bargain(self.type, self.bargain)
        _check_red_packet(self.type, self.red_packet)
        voucher = (self.bargain is not None and self.bargain.reward == "cut_voucher") or (
            self.red_packet is not None and self.red_packet.claim_as == "voucher"
        )
        if voucher and len(self.coupons) != 1:
            # The voucher is one of that coupon (its kind, validity, stores, stock) with its own value.
            raise ValueError("a bargain or red packet paying a voucher needs exactly one coupon")
        if (self.type == "lucky_draw") != (self.draw is not None):
            raise ValueError("a lucky_draw needs a draw block, and only a lucky_draw has one")
        if self.draw is not None:
            for prize in self.draw.prizes:
                if prize.coupon_index is not None and prize.coupon_index >= len(self.coupons):
                    raise ValueError(f"prize {prize.key!r}: coupon_index is not one of the campaign's coupons")
        if self.visibility == "targeted" and self.audience_rule is None:
            raise ValueError("a targeted campaign needs an audience_rule")
        hot = any(c.stock_buckets > 1 for c in self.coupons)
        if hot and (self.type != "flash_sale" or self.visibility != "public"):
            # Only a grab takes from buckets: other types grant their coupons (a grant
            # decides in the campaign's slot), and the audience set lives in that slot.
            raise ValueError("only a public flash_sale's coupons can have stock_buckets above 1")
        if len({c.id for c in self.coupons if c.id is not None}) != len([c for c in self.coupons if c.id]):
            raise ValueError("a coupon id appears twice")
        return self


def _check_bargain(kind: str, spec: BargainSpec | None) -> None:
    if kind not in BARGAIN_TYPES:
        if spec is not None:
            raise ValueError("only bargain and assist campaigns have a bargain block")
        return
    if spec is None:
        raise ValueError(f"a {kind} campaign needs a bargain block")
    if kind == "assist":
        if spec.helpers_needed is None:
            raise ValueError("an assist needs bargain.helpers_needed")
        if spec.reward == "cut_voucher":
            raise ValueError("an assist has no price to cut: bargain.reward cut_voucher is for bargains")
        return
    if spec.floor_price >= spec.start_price:
        raise ValueError("bargain.floor_price must be below start_price")
    if spec.cut_min > spec.cut_max:
        raise ValueError("bargain.cut_min must not be above cut_max")
    if spec.helpers_needed is not None and spec.start_price - spec.floor_price < spec.helpers_needed:
        # Every helper before the last cuts at least 1 fen (docs/forms.md).
        raise ValueError("bargain: start_price - floor_price must be at least helpers_needed (1 fen per helper)")


def _check_red_packet(kind: str, spec: RedPacketSpec | None) -> None:
    if kind != "red_packet":
        if spec is not None:
            raise ValueError("only red_packet campaigns have a red_packet block")
        return
    if spec is None:
        raise ValueError("a red_packet campaign needs a red_packet block")
    if spec.cap - spec.initial_value < spec.helpers_needed * spec.min_increment:
        # Every help adds at least min_increment and the last one reaches the cap exactly.
        raise ValueError("red_packet: cap - initial_value must be at least helpers_needed x min_increment")


def _schedule_error(field: str, message: str) -> errors.AppError:
    return errors.InvalidSchedule(f"{field}: {message}", details={"field": field})


def check_consistency(spec: CampaignIn) -> None:
    """The cross-field rules, each with its own error code."""
    if spec.starts_at >= spec.ends_at:
        raise _schedule_error("ends_at", "must be after starts_at")
    if spec.visible_from is not None and spec.visible_from > spec.starts_at:
        raise _schedule_error("visible_from", "must not be after starts_at")
    if spec.redeem_until is not None and spec.redeem_until < spec.ends_at:
        raise _schedule_error("redeem_until", "must not be before ends_at")
    for i, coupon in enumerate(spec.coupons):
        if isinstance(coupon.validity, FixedValidity) and coupon.validity.valid_until <= coupon.validity.valid_from:
            raise _schedule_error(f"coupons[{i}].validity.valid_until", "must be after valid_from")
        if isinstance(coupon.validity, FixedValidity) and coupon.validity.valid_until <= spec.starts_at:
            raise _schedule_error(f"coupons[{i}].validity.valid_until", "the coupon would expire before the campaign")
        if coupon.grab_starts_at is not None and not spec.starts_at <= coupon.grab_starts_at < spec.ends_at:
            raise _schedule_error(f"coupons[{i}].grab_starts_at", "must fall within the campaign")
        if spec.store_ids is not None and coupon.store_ids is not None:
            outside = sorted(set(coupon.store_ids) - set(spec.store_ids))
            if outside:
                raise errors.ValidationFailed(
                    f"coupons[{i}].store_ids: stores {outside} are not in the campaign",
                    details={"errors": [{"field": f"coupons[{i}].store_ids", "message": "outside the campaign's stores",
                                         "type": "scope"}]},
                )  # fmt: skip
        if coupon.channels is not None and not set(coupon.channels) <= set(spec.channels):
            raise errors.ValidationFailed(
                f"coupons[{i}].channels: must be among the campaign's channels",
                details={"errors": [{"field": f"coupons[{i}].channels", "message": "outside the campaign's channels",
                                     "type": "scope"}]},
            )  # fmt: skip
    if spec.budget_limit is not None and spec.coupons:
        largest = max(c.face_value for c in spec.coupons)
        if spec.budget_limit < largest:
            raise errors.BudgetTooSmall(
                f"budget_limit {spec.budget_limit} is smaller than one coupon ({largest})",
                details={"field": "budget_limit", "smallest_useful": largest},
            )


def rule_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The fields that changed and are not copy: such a change needs review again."""
    return {k for k in after if k not in COPY_FIELDS and before.get(k) != after.get(k)}
