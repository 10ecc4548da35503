"""Campaigns: build, read, edit and list. Lifecycle transitions live in services.campaigns.review."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CampaignLabel, CampaignStore, CouponTemplate, ReviewEvent, Theme
from models.media import MediaFile
from models.stores import Store
from services.campaigns.spec import COPY_FIELDS, CampaignIn, CouponIn, FixedValidity, check_consistency
from services.core import audit, column, errors, face_of

#: States in which the builder may change anything, and which keep their state.
OPEN_STATES = frozenset({"draft", "rejected", "returned"})
#: Approved but not yet running: rule edits send the campaign back to review.
APPROVED_STATES = frozenset({"approved", "scheduled"})
#: Running: only copy edits (texts, images, tags), if the policy lets them skip review.
LIVE_STATES = frozenset({"active", "paused"})

#: Validates an audience rule (raises a 422 naming the path); set by services.audience.
AudienceValidator = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Policy:
    review_levels: int
    copy_edits_skip_review: bool


async def _validate_references(spec: CampaignIn, audience_validator: AudienceValidator | None) -> None:
    check_consistency(spec)
    store_ids = set(spec.store_ids or [])
    for coupon in spec.coupons:
        store_ids |= set(coupon.store_ids or [])
    if store_ids:
        found = set(await Store.filter(id__in=store_ids).values_list("id", flat=True))
        missing = sorted(store_ids - found)
        if missing:
            raise errors.UnknownStore(f"no store with id {missing[0]}", details={"store_ids": missing})
    if spec.theme_id is not None and not await Theme.filter(id=spec.theme_id).exists():
        raise errors.ValidationFailed(
            "theme_id: no such theme",
            details={"errors": [{"field": "theme_id", "message": "no such theme", "type": "not_found"}]},
        )
    images = [(field, getattr(spec, field)) for field in ("banner_media_id", "poster_media_id")]
    images += [(f"content.{lang}.badge_icon_media_id", c.badge_icon_media_id) for lang, c in spec.content.items()]
    for field, media_id in images:
        if media_id is not None and not await MediaFile.filter(id=media_id).exists():
            raise errors.ValidationFailed(
                f"{field}: no such image",
                details={"errors": [{"field": field, "message": "no such image", "type": "not_found"}]},
            )
    if spec.audience_rule is not None and audience_validator is not None:
        await audience_validator(spec.audience_rule)


def _campaign_values(spec: CampaignIn) -> dict[str, Any]:
    goal = spec.goal
    return {
        "type": spec.type,
        "theme_id": spec.theme_id,
        "content": {lang: c.model_dump(exclude_none=True) for lang, c in spec.content.items()},
        "default_language": spec.default_language,
        "tags": list(dict.fromkeys(spec.tags)),
        "categories": list(dict.fromkeys(spec.categories)),
        "banner_media_id": spec.banner_media_id,
        "poster_media_id": spec.poster_media_id,
        "visible_from": spec.visible_from,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "redeem_until": spec.redeem_until,
        "channels": list(dict.fromkeys(spec.channels)),
        "all_stores": spec.store_ids is None,
        "visibility": spec.visibility,
        "audience_rule": spec.audience_rule,
        "participant_cap": spec.participant_cap,
        "per_user_limit": spec.per_user_limit,
        "goal_metric": goal.metric if goal else None,
        "goal_target": goal.target if goal else None,
        "goal_window_days": goal.window_days if goal else None,
        "reward_points": spec.reward_points,
        "reward_badge": spec.reward_badge,
        "refund_policy": spec.refund_policy,
        "budget_limit": spec.budget_limit,
        "group_spec": spec.group.model_dump() if spec.group is not None else None,
        "bargain": spec.bargain.model_dump() if spec.bargain else None,
        "red_packet": spec.red_packet.model_dump() if spec.red_packet else None,
        "draw": spec.draw.model_dump(mode="json") if spec.draw is not None else None,
    }


def _coupon_values(coupon: CouponIn) -> dict[str, Any]:
    validity = coupon.validity
    if isinstance(validity, FixedValidity):
        valid_from, valid_until, valid_days = validity.valid_from, validity.valid_until, None
    else:
        valid_from, valid_until, valid_days = None, None, validity.days
    return {
        **face_of(coupon, title=dict(coupon.title)),
        "total_stock": coupon.total_stock,
        "per_user_limit": coupon.per_user_limit,
        "grab_starts_at": coupon.grab_starts_at,
        "validity_kind": validity.kind,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "valid_days": valid_days,
        "store_ids": coupon.store_ids,
        "channels": coupon.channels,
        "points_price": coupon.points_price,
        "stock_buckets": coupon.stock_buckets,
    }


async def _write_children(campaign: Campaign, spec: CampaignIn) -> None:
    """Stores, labels and coupons of a campaign. Call inside the campaign's transaction."""
    await CampaignStore.filter(campaign_id=campaign.id).delete()
    for store_id in dict.fromkeys(spec.store_ids or []):
        await CampaignStore.create(campaign_id=campaign.id, store_id=store_id)
    await CampaignLabel.filter(campaign_id=campaign.id).delete()
    for kind, labels in (("tag", spec.tags), ("category", spec.categories), ("channel", spec.channels)):
        for value in dict.fromkeys(labels):
            await CampaignLabel.create(campaign_id=campaign.id, kind=kind, value=value)
    existing = {c.id: c for c in await CouponTemplate.filter(campaign_id=campaign.id)}
    kept: set[int] = set()
    for i, coupon in enumerate(spec.coupons):
        values = _coupon_values(coupon)
        if coupon.id is not None:
            if coupon.id not in existing:
                raise errors.ValidationFailed(
                    f"coupons[{i}].id: not a coupon of this campaign",
                    details={"errors": [{"field": f"coupons[{i}].id", "message": "not a coupon of this campaign",
                                         "type": "not_found"}]},
                )  # fmt: skip
            await CouponTemplate.filter(id=coupon.id).update(**values)
            kept.add(coupon.id)
        else:
            await CouponTemplate.create(campaign_id=campaign.id, **values)
    removed = set(existing) - kept
    if removed:
        await CouponTemplate.filter(id__in=removed).delete()


async def create(spec: CampaignIn, actor: audit.Actor, audience_validator: AudienceValidator | None) -> Campaign:
    await _validate_references(spec, audience_validator)
    async with in_transaction():
        campaign = await Campaign.create(**_campaign_values(spec), status="draft", created_by=actor.id or 0)
        await _write_children(campaign, spec)
        await audit.record(actor, "campaign.create", "campaign", campaign.id, None, await snapshot(campaign))
    return campaign


async def get(campaign_id: int) -> Campaign:
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise errors.NotFound(f"no campaign {campaign_id}")
    return campaign


async def store_ids_of(campaign: Campaign) -> list[int] | None:
    if campaign.all_stores:
        return None
    return await column(CampaignStore.filter(campaign_id=campaign.id).order_by("store_id"), "store_id")


async def coupons_of(campaign: Campaign) -> list[CouponTemplate]:
    return await CouponTemplate.filter(campaign_id=campaign.id).order_by("id")


def _coupon_spec(template: CouponTemplate) -> dict[str, Any]:
    validity: dict[str, Any] = (
        {"kind": "fixed", "valid_from": template.valid_from, "valid_until": template.valid_until}
        if template.validity_kind == "fixed"
        else {"kind": "relative", "days": template.valid_days}
    )
    return {
        "id": template.id,
        **face_of(template),
        "total_stock": template.total_stock,
        "per_user_limit": template.per_user_limit,
        "grab_starts_at": template.grab_starts_at,
        "validity": validity,
        "store_ids": template.store_ids,
        "channels": template.channels,
        "points_price": template.points_price,
        "stock_buckets": template.stock_buckets,
    }


async def spec_of(campaign: Campaign) -> dict[str, Any]:
    """The campaign as a CampaignIn-shaped dict (what a PATCH is merged into)."""
    goal = (
        {"metric": campaign.goal_metric, "target": campaign.goal_target, "window_days": campaign.goal_window_days}
        if campaign.goal_metric
        else None
    )
    return {
        "type": campaign.type,
        "theme_id": campaign.theme_id,
        "content": campaign.content,
        "default_language": campaign.default_language,
        "tags": campaign.tags,
        "categories": campaign.categories,
        "banner_media_id": campaign.banner_media_id,
        "poster_media_id": campaign.poster_media_id,
        "visible_from": campaign.visible_from,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "redeem_until": campaign.redeem_until,
        "channels": campaign.channels,
        "store_ids": await store_ids_of(campaign),
        "visibility": campaign.visibility,
        "audience_rule": campaign.audience_rule,
        "participant_cap": campaign.participant_cap,
        "per_user_limit": campaign.per_user_limit,
        "goal": goal,
        "reward_points": campaign.reward_points,
        "reward_badge": campaign.reward_badge,
        "refund_policy": campaign.refund_policy,
        "budget_limit": campaign.budget_limit,
        "bargain": campaign.bargain,
        "red_packet": campaign.red_packet,
        "coupons": [_coupon_spec(c) for c in await coupons_of(campaign)],
        "group": campaign.group_spec,
        "draw": campaign.draw,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


async def reviewable_spec(campaign: Campaign) -> dict[str, Any]:
    """The campaign's reviewable fields as JSON (what an approval approves): the
    CampaignIn shape, normalised by validation so two equal specs compare equal."""
    return CampaignIn.model_validate(await spec_of(campaign), strict=False).model_dump(mode="json")


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ApprovalDiff:
    """``approved`` False: never approved (no snapshot), and ``changes`` is empty."""

    approved: bool
    changes: list[FieldChange]


async def approval_diff(campaign_id: int) -> ApprovalDiff:
    """What changed in the campaign's reviewable fields since it last became approved:
    one entry per top-level field that differs (coupons compare as one list)."""
    campaign = await get(campaign_id)
    if campaign.approved_spec is None:
        return ApprovalDiff(approved=False, changes=[])
    old = campaign.approved_spec
    new = await reviewable_spec(campaign)
    fields = sorted(set(old) | set(new))
    return ApprovalDiff(
        approved=True, changes=[FieldChange(f, old.get(f), new.get(f)) for f in fields if old.get(f) != new.get(f)]
    )


async def snapshot(campaign: Campaign) -> dict[str, Any]:
    """What the audit log records of a campaign: its spec plus its state."""
    return _jsonable({**await spec_of(campaign), "status": campaign.status, "version": campaign.version})


async def update(
    campaign_id: int,
    changes: dict[str, Any],
    expected_version: int | None,
    actor: audit.Actor,
    policy: Policy,
    audience_validator: AudienceValidator | None,
) -> Campaign:
    """Apply a partial change. Copy edits keep an approved campaign approved (by policy);
    rule edits send it back to review; running campaigns take copy edits only."""
    campaign = await get(campaign_id)
    if expected_version is not None and expected_version != campaign.version:
        raise errors.CampaignStateChanged(details={"version": campaign.version})
    current = await spec_of(campaign)
    merged_raw = {**current, **changes}
    spec = _revalidate(merged_raw)
    after = spec.model_dump(mode="json")
    before = CampaignIn.model_validate(current, strict=False).model_dump(mode="json")
    changed = {k for k in after if before.get(k) != after.get(k)}
    if not changed:
        return campaign
    rule_change = bool(changed - COPY_FIELDS)
    status = campaign.status
    new_status = status
    review_values: dict[str, Any] = {}
    if status in OPEN_STATES:
        pass
    elif status in APPROVED_STATES:
        if rule_change or not policy.copy_edits_skip_review:
            # Back to review, as a new submission by the editor (0 levels: approved at
            # once, as services.campaigns.review.submit does).
            new_status = "in_review" if policy.review_levels > 0 else "approved"
            review_values = {
                "review_levels": policy.review_levels,
                "review_level_done": 0,
                "submitted_by": actor.id,
                "submitted_at": datetime.now(UTC),
            }
    elif status in LIVE_STATES:
        if rule_change:
            raise errors.CampaignNotEditable(
                f"a {status} campaign takes copy edits only; changed rules: {', '.join(sorted(changed - COPY_FIELDS))}",
                details={"status": status, "fields": sorted(changed - COPY_FIELDS)},
            )
        if not policy.copy_edits_skip_review:
            raise errors.CampaignNotEditable(
                f"copy edits of a {status} campaign need review under this policy", details={"status": status}
            )
    else:
        raise errors.CampaignNotEditable(f"a campaign that is {status} cannot be edited", details={"status": status})
    await _validate_references(spec, audience_validator)
    async with in_transaction():
        values = _campaign_values(spec)
        updated = await Campaign.filter(id=campaign.id, version=campaign.version, status=status).update(
            **values, **review_values, status=new_status, version=campaign.version + 1
        )
        if updated != 1:
            raise errors.CampaignStateChanged()
        campaign = await get(campaign.id)
        await _write_children(campaign, spec)
        if review_values and new_status == "approved":
            # Approved at once (0 review levels): this is the new approved version.
            await Campaign.filter(id=campaign.id).update(approved_spec=after)
        if review_values:
            note = "edited after approval: " + ", ".join(sorted(changed))
            await ReviewEvent.create(campaign_id=campaign.id, action="submit", level=0, actor_id=actor.id or 0,
                                     comment=note)  # fmt: skip
            if new_status == "approved":
                await ReviewEvent.create(campaign_id=campaign.id, action="approve", level=0, actor_id=0,
                                         comment="no review required by policy")  # fmt: skip
        await audit.record(actor, "campaign.update", "campaign", campaign.id, _jsonable({**before, "status": status}),
                           _jsonable({**after, "status": new_status}))  # fmt: skip
    return campaign


def _revalidate(raw: dict[str, Any]) -> CampaignIn:
    """Validate a merged spec. Stored values are Python objects (datetimes), so this
    validates in lax mode; the client's own fields were already strictly validated."""
    try:
        return CampaignIn.model_validate(raw, strict=False)
    except ValidationError as exc:
        raise errors.from_validation(exc, "body") from None


async def delete(campaign_id: int, actor: audit.Actor) -> None:
    """Only a campaign that never got past the builder may be deleted."""
    campaign = await get(campaign_id)
    if campaign.status not in OPEN_STATES:
        raise errors.CampaignNotEditable(
            f"a campaign that is {campaign.status} cannot be deleted; end and archive it instead",
            details={"status": campaign.status},
        )
    async with in_transaction():
        before = await snapshot(campaign)
        await CouponTemplate.filter(campaign_id=campaign.id).delete()
        # SQLite counts the rows its foreign keys cascade to as well: test for zero.
        deleted = await Campaign.filter(id=campaign.id, version=campaign.version).delete()
        if not deleted:
            raise errors.CampaignStateChanged()
        await audit.record(actor, "campaign.delete", "campaign", campaign.id, before, None)


@dataclass(frozen=True)
class ListFilter:
    status: str | None = None
    type: str | None = None
    store_id: int | None = None
    channel: str | None = None
    tag: str | None = None
    theme_id: int | None = None
    active_from: datetime | None = None
    active_to: datetime | None = None


def filtered(f: ListFilter) -> QuerySet[Campaign]:
    rows = Campaign.all()
    if f.status:
        rows = rows.filter(status=f.status)
    if f.type:
        rows = rows.filter(type=f.type)
    if f.theme_id is not None:
        rows = rows.filter(theme_id=f.theme_id)
    if f.active_from is not None:
        rows = rows.filter(ends_at__gt=f.active_from)
    if f.active_to is not None:
        rows = rows.filter(starts_at__lt=f.active_to)
    for kind, value in (("tag", f.tag), ("channel", f.channel)):
        if value:
            rows = rows.filter(id__in=Subquery(CampaignLabel.filter(kind=kind, value=value).values("campaign_id")))
    if f.store_id is not None:
        in_store = Subquery(CampaignStore.filter(store_id=f.store_id).values("campaign_id"))
        rows = rows.filter(Q(id__in=in_store) | Q(all_stores=True))
    return rows
