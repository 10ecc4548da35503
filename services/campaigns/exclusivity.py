"""Mutual exclusivity between campaigns: finding overlaps, marking pairs, and checking a
customer against them (used where a customer joins or claims)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CampaignStore, ExclusivityLink
from models.participations import Participation
from models.vouchers import Voucher
from services.campaigns.editing import get
from services.core import audit, column, errors

#: States in which a campaign can still collide with another.
LIVE_OR_PENDING = ("in_review", "approved", "scheduled", "active", "paused")


@dataclass(frozen=True)
class Overlap:
    campaign: Campaign
    shared_store_ids: list[int] | None  # None: both run in every store
    shared_categories: list[str]
    exclusive: bool


async def _stores(campaign: Campaign) -> set[int] | None:
    if campaign.all_stores:
        return None
    return set(await column(CampaignStore.filter(campaign_id=campaign.id), "store_id"))


def _shared_stores(a: set[int] | None, b: set[int] | None) -> set[int] | Literal[False] | None:
    """None: everywhere; a set: those stores; False: no store in common."""
    if a is None and b is None:
        return None
    shared = (b or set()) if a is None else (a if b is None else a & b)
    return shared if shared else False


async def exclusive_ids(campaign_id: int) -> set[int]:
    rows = await ExclusivityLink.filter(Q(campaign_low_id=campaign_id) | Q(campaign_high_id=campaign_id)).values_list(
        "campaign_low_id", "campaign_high_id"
    )
    return {low if high == campaign_id else high for low, high in rows}


async def overlaps(campaign_id: int) -> list[Overlap]:
    """Other live or in-review campaigns whose time and scope (stores, and categories
    when both name some) overlap this one's."""
    return await overlaps_of(await get(campaign_id))


async def overlaps_of(campaign: Campaign) -> list[Overlap]:
    """``overlaps`` for a campaign row as given (its window may be one not saved yet)."""
    mine = await _stores(campaign)
    linked = await exclusive_ids(campaign.id)
    found: list[Overlap] = []
    candidates = Campaign.filter(
        status__in=LIVE_OR_PENDING, starts_at__lt=campaign.ends_at, ends_at__gt=campaign.starts_at
    ).exclude(id=campaign.id)
    for other in await candidates.order_by("starts_at", "id"):
        shared = _shared_stores(mine, await _stores(other))
        if shared is False:
            continue
        categories = sorted(set(campaign.categories) & set(other.categories))
        if campaign.categories and other.categories and not categories:
            continue
        found.append(Overlap(other, None if shared is None else sorted(shared), categories, other.id in linked))
    return found


async def set_exclusive(campaign_id: int, other_ids: list[int], actor: audit.Actor) -> set[int]:
    """Replace the set of campaigns this one is exclusive with."""
    campaign = await get(campaign_id)
    wanted = set(other_ids)
    if campaign.id in wanted:
        raise errors.ValidationFailed(
            "campaign_ids: a campaign cannot exclude itself",
            details={"errors": [{"field": "campaign_ids", "message": "contains this campaign", "type": "self"}]},
        )
    existing = set(await Campaign.filter(id__in=wanted).values_list("id", flat=True))
    if existing != wanted:
        missing = sorted(wanted - existing)
        raise errors.ValidationFailed(
            f"campaign_ids: no campaign {missing[0]}",
            details={"errors": [{"field": "campaign_ids", "message": f"unknown: {missing}", "type": "not_found"}]},
        )
    async with in_transaction():
        before = await exclusive_ids(campaign.id)
        for other in before - wanted:
            low, high = sorted((campaign.id, other))
            await ExclusivityLink.filter(campaign_low_id=low, campaign_high_id=high).delete()
        for other in wanted - before:
            low, high = sorted((campaign.id, other))
            await ExclusivityLink.create(campaign_low_id=low, campaign_high_id=high, created_by=actor.id or 0)
        await audit.record(
            actor, "campaign.exclusivity", "campaign", campaign.id, {"exclusive_with": sorted(before)},
            {"exclusive_with": sorted(wanted)},
        )  # fmt: skip
    return wanted


async def conflicts_for(customer_id: int, campaign_id: int) -> list[int]:
    """Campaigns exclusive with this one that the customer already takes part in (joined,
    or holds a voucher of). Empty means the customer may join or claim."""
    others = await exclusive_ids(campaign_id)
    if not others:
        return []
    joined = set(await column(Participation.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id"))
    holding = set(await column(Voucher.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id"))
    return sorted(joined | holding)
