"""Audience targeting for admins: preview a rule's audience, and keep saved segments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import AfterValidator, Field

from handlers.common.actors import actor_of
from handlers.common.schemas import PageQuery
from models.audience import Segment
from server.access import admin
from server.routing import RouteTable, path_int, principal_of
from services.audience import MAX_RULE_BYTES, rule_size_ok, segments
from services.audience import rules as audience
from services.core import Body, Out, audit, errors, newest_first

routes = RouteTable()

#: Everyone who builds or reviews campaigns needs to see who a rule reaches.
READERS = admin("operator", "reviewer", "approver", "superadmin")
WRITERS = admin("operator", "superadmin")


def _bounded_rule(value: dict[str, Any]) -> dict[str, Any]:
    # Node and depth limits are checked by services.audience with paths; this bounds
    # the work before that (a rule's text, whatever its shape).
    if not rule_size_ok(value):
        raise ValueError(f"the rule is larger than {MAX_RULE_BYTES} bytes")
    return value


Rule = Annotated[
    dict[str, Any],
    AfterValidator(_bounded_rule),
    Field(description='{"all": [...]} / {"any": [...]} / {"not": rule} / {"<predicate>": value}: see the README'),
]


def _name(value: str) -> str:
    if "\x00" in value or value != value.strip():
        raise ValueError("must not contain NUL characters or surrounding spaces")
    return value


class AudiencePreviewIn(Body):
    rule: Rule
    sample_size: int = Field(default=20, ge=0, le=100)


class SampleOut(Out):
    id: int
    nickname: str | None
    city: str | None
    membership_tier: str
    lifecycle_stage: str


class AudiencePreviewOut(Out):
    count: int
    sample: list[SampleOut]


class SegmentIn(Body):
    name: Annotated[str, AfterValidator(_name)] = Field(min_length=1, max_length=64)
    rule: Rule
    description: str = Field(default="", max_length=500)


class SegmentReplaceIn(Body):
    rule: Rule
    description: str = Field(default="", max_length=500)


class SegmentOut(Out):
    id: int
    name: str
    rule: dict[str, Any]
    description: str
    created_by: int
    created_at: datetime
    updated_at: datetime


class SegmentPageOut(Out):
    items: list[SegmentOut]
    next_cursor: str | None


@routes.add(
    "POST", "/api/v1/admin/audiences/preview", access=READERS, tags=("audiences",), body=AudiencePreviewIn,
    response=AudiencePreviewOut, summary="Count the customers a rule matches, with a sample of the newest",
)  # fmt: skip
async def preview(request: web.Request, body: AudiencePreviewIn) -> AudiencePreviewOut:
    count, sample = await audience.preview(body.rule, body.sample_size)
    return AudiencePreviewOut(count=count, sample=[SampleOut.model_validate(row) for row in sample])


@routes.add(
    "POST", "/api/v1/admin/segments", access=WRITERS, tags=("audiences",), body=SegmentIn, response=SegmentOut,
    status=201, summary="Save a rule as a named segment", errors=(errors.Conflict,),
)  # fmt: skip
async def create_segment(request: web.Request, body: SegmentIn) -> SegmentOut:
    segment = await segments.create_segment(body.name, body.rule, body.description, principal_of(request).id)
    # Recorded after the insert (the service has no actor); a failure here leaves the
    # segment unaudited, never an audit entry without its segment.
    after = {"name": segment.name, "rule": segment.rule, "description": segment.description}
    await audit.record(actor_of(request), "segment.create", "segment", segment.id, None, after)
    return SegmentOut.model_validate(segment)


@routes.add(
    "GET", "/api/v1/admin/segments", access=READERS, tags=("audiences",), query=PageQuery,
    response=SegmentPageOut, summary="List saved segments, newest first",
)  # fmt: skip
async def list_segments(request: web.Request, query: PageQuery) -> SegmentPageOut:
    page, nxt = await newest_first(Segment.all(), query.cursor, query.limit)
    return SegmentPageOut(items=[SegmentOut.model_validate(s) for s in page], next_cursor=nxt)


@routes.add(
    "GET", "/api/v1/admin/segments/{id}", access=READERS, tags=("audiences",), response=SegmentOut,
    summary="One saved segment",
)  # fmt: skip
async def get_segment(request: web.Request) -> SegmentOut:
    return SegmentOut.model_validate(await segments.get_segment(path_int(request, "id")))


@routes.add(
    "PUT", "/api/v1/admin/segments/{id}", access=WRITERS, tags=("audiences",), body=SegmentReplaceIn,
    response=SegmentOut, summary="Replace a segment's rule and description",
)  # fmt: skip
async def replace_segment(request: web.Request, body: SegmentReplaceIn) -> SegmentOut:
    segment = await segments.replace_segment(path_int(request, "id"), body.rule, body.description)
    return SegmentOut.model_validate(segment)


@routes.add(
    "DELETE", "/api/v1/admin/segments/{id}", access=WRITERS, tags=("audiences",), status=204,
    summary="Delete a segment no other rule uses", errors=(errors.SegmentInUse,),
)  # fmt: skip
async def delete_segment(request: web.Request) -> web.Response:
    await segments.delete_segment(path_int(request, "id"))
    return web.Response(status=204)
