"""A group_buy campaign's groups as an admin sees them: counts by status, real and
virtual members apart (virtual_fill is shown honestly), and a page of the groups."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import PageQuery
from server.access import ANY_ADMIN
from server.routing import RouteTable, path_int
from services.core import Out, errors
from services.forms import group_page, group_summary

routes = RouteTable()


class GroupRowOut(Out):
    id: int
    status: str = Field(description="open, filled or failed")
    size: int
    real_members: int = Field(description="customers in the group, the opener included")
    virtual_members: int = Field(description="virtual members added by virtual_fill when it expired")
    leader_id: int = Field(description="the customer who opened it")
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class GroupSummaryOut(Out):
    open: int
    filled: int
    failed: int
    filled_with_virtual: int = Field(description="filled groups completed with virtual members")
    real_members: int
    virtual_members: int
    items: list[GroupRowOut] = Field(description="a page of the groups, newest first")
    next_cursor: str | None


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/groups", access=ANY_ADMIN, tags=("forms",), query=PageQuery,
    response=GroupSummaryOut,
    summary="A group_buy campaign's groups by status, its real and virtual members, and a page of its groups "
    "(newest first; as written to the database)",
    errors=(errors.NotFound, errors.ValidationFailed),
)  # fmt: skip
async def group_counts(request: web.Request, query: PageQuery) -> GroupSummaryOut:
    campaign_id = path_int(request, "id")
    counts = await group_summary(campaign_id)
    rows, nxt = await group_page(campaign_id, cursor=query.cursor, limit=query.limit)
    return GroupSummaryOut(**counts, items=[GroupRowOut.model_validate(r) for r in rows], next_cursor=nxt)
