"""Themes: one name grouping several campaigns (e.g. "Women's Day"), for the feed's
themed sections, reporting and review. Every change is audited."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, Theme
from services.core import audit, column, errors

#: How many of a theme's campaigns a ``theme_in_use`` refusal names.
IN_USE_SHOWN = 20


async def get_theme(theme_id: int) -> Theme:
    theme = await Theme.get_or_none(id=theme_id)
    if theme is None:
        raise errors.NotFound(f"no theme {theme_id}")
    return theme


async def update_theme(theme_id: int, changes: dict[str, Any], actor: audit.Actor) -> Theme:
    """Change the fields given (``name``, ``description``). A name another theme has is
    ``409 conflict``. Campaigns keep their theme: they show its new name."""
    theme = await get_theme(theme_id)
    before = {k: getattr(theme, k) for k in changes}
    if before == changes:
        return theme
    try:
        async with in_transaction():
            await Theme.filter(id=theme.id).update(**changes)
            await audit.record(actor, "theme.update", "theme", theme.id, before, changes)
    except IntegrityError:
        raise errors.Conflict(f"a theme named {changes.get('name')!r} exists", details={"field": "name"}) from None
    return await get_theme(theme.id)


async def delete_theme(theme_id: int, actor: audit.Actor) -> None:
    """Delete a theme no campaign uses. Refused with ``409 theme_in_use`` (naming them)
    while any campaign, in any state, points at it: detaching them silently would change
    approved and running campaigns' feed sections and reports behind their reviewers'
    backs; move them to another theme (a copy edit) first."""
    theme = await get_theme(theme_id)
    async with in_transaction():
        using = Campaign.filter(theme_id=theme.id)
        count = await using.count()
        if count:
            ids = await column(using.order_by("id").limit(IN_USE_SHOWN), "id")
            raise errors.ThemeInUse(details={"campaigns": count, "campaign_ids": [int(i) for i in ids]})
        try:
            await Theme.filter(id=theme.id).delete()
        except IntegrityError:  # a campaign took the theme since the count (the key restricts)
            raise errors.ThemeInUse(details={"campaigns": 1, "campaign_ids": []}) from None
        await audit.record(
            actor, "theme.delete", "theme", theme.id, {"name": theme.name, "description": theme.description}, None
        )


async def campaigns_of(theme_id: int) -> list[int]:
    """The ids of the campaigns a theme groups."""
    return [int(i) for i in await column(Campaign.filter(theme_id=theme_id), "id")]
