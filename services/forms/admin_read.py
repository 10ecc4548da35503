"""What the console shows of a social form's live state: pages of a campaign's groups,
bargains (bargain, assist and red packets) and lucky draws, newest first, as written to
the database by the forms' workers (a decision still in its stream shows a moment later).

Read only; the campaign must exist (``404 not_found`` otherwise). A campaign of another
type simply has none of them: an empty page."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from models.bargains import Bargain
from models.campaigns import Campaign
from models.draws import LuckyDraw
from models.group_buy import GroupBuy, GroupMember
from services.core import errors, newest_first


async def _campaign_exists(campaign_id: int) -> None:
    if not await Campaign.filter(id=campaign_id).exists():
        raise errors.NotFound(f"no campaign {campaign_id}")


@dataclass(frozen=True)
class GroupRow:
    id: int
    status: str
    size: int
    #: Real members (the opener included) and virtual ones (virtual_fill), apart.
    real_members: int
    virtual_members: int
    leader_id: int
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None


async def group_page(campaign_id: int, *, cursor: str | None, limit: int) -> tuple[list[GroupRow], str | None]:
    """One page of a campaign's groups (newest first) and the next page's cursor.
    Precondition: ``1 <= limit <= 100``; a cursor this server did not issue is a 422."""
    await _campaign_exists(campaign_id)
    page, nxt = await newest_first(GroupBuy.filter(campaign_id=campaign_id), cursor, limit)
    real: Counter[int] = Counter()
    if page:
        ids = [g.id for g in page]
        members = await GroupMember.filter(group_id__in=ids, virtual=False).values("group_id")
        real.update(int(r["group_id"]) for r in members)
    rows = [
        GroupRow(
            id=g.id,
            status=g.status,
            size=g.size,
            real_members=real.get(g.id, 0),
            virtual_members=g.virtual_members,
            leader_id=g.leader_id,
            opened_at=g.opened_at,
            expires_at=g.expires_at,
            closed_at=g.closed_at,
        )
        for g in page
    ]
    return rows, nxt


async def bargain_page(campaign_id: int, *, cursor: str | None, limit: int) -> tuple[list[Bargain], str | None]:
    """One page of a campaign's bargains, assists or red packets (newest first) and the
    next page's cursor. Precondition: ``1 <= limit <= 100``; a forged cursor is a 422."""
    await _campaign_exists(campaign_id)
    return await newest_first(Bargain.filter(campaign_id=campaign_id), cursor, limit)


async def draw_page(campaign_id: int, *, cursor: str | None, limit: int) -> tuple[list[LuckyDraw], str | None]:
    """One page of a lucky draw's draws (newest first) and the next page's cursor.
    Precondition: ``1 <= limit <= 100``; a forged cursor is a 422."""
    await _campaign_exists(campaign_id)
    return await newest_first(LuckyDraw.filter(campaign_id=campaign_id), cursor, limit)
