"""A group_buy campaign's groups as an admin sees them: counts by status, and real and
virtual members apart (virtual_fill is shown honestly)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.access import ANY_ADMIN
from server.routing import RouteTable, path_int
from services.core import Out, errors
from services.forms import group_summary

routes = RouteTable()


class GroupSummaryOut(Out):
    open: int
    filled: int
    failed: int
    filled_with_virtual: int = Field(description="filled groups completed with virtual members")
    real_members: int
    virtual_members: int


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/groups", access=ANY_ADMIN, tags=("forms",), response=GroupSummaryOut,
    summary="A group_buy campaign's groups by status, and its real and virtual members (as written to the database)",
    errors=(errors.NotFound,),
)  # fmt: skip
async def group_counts(request: web.Request) -> GroupSummaryOut:
    return GroupSummaryOut(**await group_summary(path_int(request, "id")))
