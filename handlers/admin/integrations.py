"""Integrations (POS, CRM) that may post events: created by superadmins."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from handlers.common.schemas import PageQuery
from models.journey import Integration
from server.access import admin
from server.keys import SETTINGS
from server.routing import RouteTable
from services.activity import integrations
from services.core import Body, Out, errors, newest_first

routes = RouteTable()


class IntegrationIn(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.-]+$")


class IntegrationOut(Out):
    id: int
    name: str
    key_id: str = Field(description="sent as X-Api-Key")
    is_active: bool
    created_at: datetime


class IntegrationCreatedOut(IntegrationOut):
    secret: str = Field(description="the HMAC key: shown this once, never again")


class IntegrationPageOut(Out):
    items: list[IntegrationOut]
    next_cursor: str | None


@routes.add(
    "POST", "/api/v1/admin/integrations", access=admin("superadmin"), tags=("integrations",), body=IntegrationIn,
    response=IntegrationCreatedOut, status=201, errors=(errors.Conflict,),
    summary="Create an integration: its key id and secret (the secret is shown once)",
)  # fmt: skip
async def create_integration(request: web.Request, body: IntegrationIn) -> IntegrationCreatedOut:
    row, secret = await integrations.create(body.name, request.app[SETTINGS].secret_key, actor_of(request))
    return IntegrationCreatedOut(
        id=row.id, name=row.name, key_id=row.key_id, is_active=row.is_active, created_at=row.created_at, secret=secret
    )


@routes.add(
    "GET", "/api/v1/admin/integrations", access=admin("superadmin"), tags=("integrations",), query=PageQuery,
    response=IntegrationPageOut, summary="List integrations (never their secrets)",
)  # fmt: skip
async def list_integrations(request: web.Request, query: PageQuery) -> IntegrationPageOut:
    page, nxt = await newest_first(Integration.all(), query.cursor, query.limit)
    return IntegrationPageOut(items=[IntegrationOut.model_validate(i) for i in page], next_cursor=nxt)
