"""Overlapping campaigns, and marking them mutually exclusive."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from server.access import admin
from server.keys import JOURNEY
from server.routing import RouteTable, path_int
from services.campaigns import exclusivity
from services.core import Body, Id, Out, errors

routes = RouteTable()
_PATH = "/api/v1/admin/campaigns/{id}"


class OverlapOut(Out):
    id: int
    type: str
    status: str
    title: str
    starts_at: datetime
    ends_at: datetime
    shared_store_ids: list[int] | None = Field(description="null: both run in every store")
    shared_categories: list[str]
    exclusive: bool


class OverlapsOut(Out):
    items: list[OverlapOut]


class ExclusiveIn(Body):
    campaign_ids: list[Id] = Field(max_length=200, description="the full set this campaign excludes")


class ExclusiveOut(Out):
    campaign_ids: list[int]


@routes.add(
    "GET", _PATH + "/overlaps", access=admin(), tags=("campaigns",), response=OverlapsOut,
    summary="Live or in-review campaigns overlapping this one in time and scope (stores, categories)",
)  # fmt: skip
async def list_overlaps(request: web.Request) -> OverlapsOut:
    found = await exclusivity.overlaps(path_int(request, "id"))
    return OverlapsOut(
        items=[
            OverlapOut(
                id=o.campaign.id,
                type=o.campaign.type,
                status=o.campaign.status,
                title=str((o.campaign.content.get(o.campaign.default_language) or {}).get("title", "")),
                starts_at=o.campaign.starts_at,
                ends_at=o.campaign.ends_at,
                shared_store_ids=o.shared_store_ids,
                shared_categories=o.shared_categories,
                exclusive=o.exclusive,
            )
            for o in found
        ]
    )


@routes.add(
    "PUT", _PATH + "/exclusive", access=admin("operator", "superadmin"), tags=("campaigns",), body=ExclusiveIn,
    response=ExclusiveOut, summary="Set the campaigns this one is mutually exclusive with",
    errors=(errors.NotFound,),
)  # fmt: skip
async def set_exclusive(request: web.Request, body: ExclusiveIn) -> ExclusiveOut:
    campaign_id = path_int(request, "id")
    ids = await exclusivity.set_exclusive(campaign_id, body.campaign_ids, actor_of(request))
    for changed in {campaign_id, *ids}:
        await request.app[JOURNEY].campaign_changed(changed)
    return ExclusiveOut(campaign_ids=sorted(ids))
