"""Reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import PageQuery
from models.audit import AuditEntry
from server.access import admin
from server.routing import RouteTable
from services.core import Id, Out, newest_first

routes = RouteTable()


class AuditQuery(PageQuery):
    entity_type: str | None = Field(default=None, max_length=32)
    entity_id: Id | None = None
    actor_id: Id | None = None
    action: str | None = Field(default=None, max_length=64)


class AuditEntryOut(Out):
    id: int
    actor_kind: str
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


class AuditPageOut(Out):
    items: list[AuditEntryOut]
    next_cursor: str | None


@routes.add(
    "GET", "/api/v1/admin/audit", access=admin("approver", "superadmin"), tags=("admin",), query=AuditQuery,
    response=AuditPageOut, summary="The audit log, newest first (who, when, what changed, before/after)",
)  # fmt: skip
async def list_audit(request: web.Request, query: AuditQuery) -> AuditPageOut:
    rows = AuditEntry.all()
    for name in ("entity_type", "entity_id", "actor_id", "action"):
        value = getattr(query, name)
        if value is not None:
            rows = rows.filter(**{name: value})
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return AuditPageOut(items=[AuditEntryOut.model_validate(e) for e in page], next_cursor=nxt)
