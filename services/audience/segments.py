"""Saved audience segments: named rules other rules refer to (``{"segment": name}``),
created, replaced and deleted by admins; a segment still in use cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError

from models.audience import Segment
from models.campaigns import Campaign
from services.audience.rules import validate_rule
from services.core import errors

# --- saved segments -----------------------------------------------------------------


async def create_segment(name: str, rule: Any, description: str, admin_id: int) -> Segment:
    """Save a rule under a unique name (409 conflict if taken; 422 if the rule is bad)."""
    if await Segment.filter(name=name).exists():
        raise _name_taken(name)
    await validate_rule(rule, segment_name=name)
    try:
        return await Segment.create(name=name, rule=rule, description=description, created_by=admin_id)
    except IntegrityError:  # created by someone else since the check above
        raise _name_taken(name) from None


async def get_segment(segment_id: int) -> Segment:
    segment = await Segment.get_or_none(id=segment_id)
    if segment is None:
        raise errors.NotFound("no such segment")
    return segment


async def replace_segment(segment_id: int, rule: Any, description: str) -> Segment:
    """Replace a segment's rule and description; a rule that would make segments refer
    to each other in a cycle is a 422."""
    segment = await get_segment(segment_id)
    await validate_rule(rule, segment_name=segment.name)
    segment.rule = rule
    segment.description = description
    await segment.save(update_fields=["rule", "description", "updated_at"])
    return segment


async def delete_segment(segment_id: int) -> None:
    """Delete a segment no other segment or unfinished campaign refers to (else 409
    segment_in_use, naming them): those rules would stop compiling."""
    segment = await get_segment(segment_id)
    used_by = [
        name
        for name, rule in await Segment.exclude(id=segment.id).values_list("name", "rule")
        if segment.name in segment_names_in(rule)
    ]
    campaigns = (
        await Campaign.filter(audience_rule__isnull=False)
        .exclude(status__in=("ended", "archived"))
        .values_list("id", "audience_rule")
    )
    used_in = [campaign_id for campaign_id, rule in campaigns if segment.name in segment_names_in(rule)]
    if used_by or used_in:
        raise errors.SegmentInUse(
            f"segment {segment.name!r} is used by other rules",
            details={"segments": sorted(used_by), "campaign_ids": sorted(used_in)},
        )
    await segment.delete()


def segment_names_in(raw: Any) -> set[str]:
    """Names of the segments a stored rule refers to (tolerant of any JSON: iterative, so
    no depth can exhaust the stack)."""
    names: set[str] = set()
    stack = [raw]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("segment"), str):
                names.add(item["segment"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names


def _name_taken(name: str) -> errors.AppError:
    return errors.Conflict(f"a segment named {name!r} already exists", details={"field": "name"})
