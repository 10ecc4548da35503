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
from server.routing import RouteTable, path_int
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

    previous_secret_expires_at: datetime | None = Field(
        description="after a rotation: until when the previous secret is still accepted"
    )


class IntegrationCreatedOut(IntegrationOut):
    secret: str = Field(description="the HMAC key: shown this once, never again")


class IntegrationPatchIn(Body):
    active: bool


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
    return IntegrationCreatedOut(**IntegrationOut.model_validate(row).model_dump(), secret=secret)


@routes.add(
    "GET", "/api/v1/admin/integrations", access=admin("superadmin"), tags=("integrations",), query=PageQuery,
    response=IntegrationPageOut, summary="List integrations (never their secrets)",
)  # fmt: skip
async def list_integrations(request: web.Request, query: PageQuery) -> IntegrationPageOut:
    page, nxt = await newest_first(Integration.all(), query.cursor, query.limit)
    return IntegrationPageOut(items=[IntegrationOut.model_validate(i) for i in page], next_cursor=nxt)


@routes.add(
    "PATCH", "/api/v1/admin/integrations/{id}", access=admin("superadmin"), tags=("integrations",),
    body=IntegrationPatchIn, response=IntegrationOut, errors=(errors.NotFound,),
    summary="Enable or disable an integration (a disabled one's events are refused: invalid_api_key); audited",
)  # fmt: skip
async def patch_integration(request: web.Request, body: IntegrationPatchIn) -> IntegrationOut:
    row = await integrations.set_active(path_int(request, "id"), body.active, actor_of(request))
    return IntegrationOut.model_validate(row)


@routes.add(
    "POST", "/api/v1/admin/integrations/{id}/rotate", access=admin("superadmin"), tags=("integrations",),
    response=IntegrationCreatedOut, errors=(errors.NotFound,),
    summary="A new secret (shown once); the old one keeps signing valid events for INTEGRATION_SECRET_GRACE "
    "seconds (24 h by default), then is refused; audited",
)  # fmt: skip
async def rotate_integration(request: web.Request) -> IntegrationCreatedOut:
    settings = request.app[SETTINGS]
    row, secret = await integrations.rotate(
        path_int(request, "id"), settings.secret_key, settings.integration_secret_grace, actor_of(request)
    )
    return IntegrationCreatedOut(**IntegrationOut.model_validate(row).model_dump(), secret=secret)
