"""Themes: one name grouping several campaigns (e.g. "Women's Day")."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from handlers.common.actors import actor_of
from handlers.common.schemas import PageQuery
from models.campaigns import Theme
from server.access import admin
from server.keys import REDIS
from server.routing import RouteTable, path_int
from services.campaigns import themes
from services.core import Body, Out, audit, errors, newest_first
from services.feed import catalog_changed

routes = RouteTable()


class ThemeIn(Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)


class ThemePatchIn(Body):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)


class ThemeOut(Out):
    id: int
    name: str
    description: str
    created_at: datetime


class ThemePageOut(Out):
    items: list[ThemeOut]
    next_cursor: str | None


@routes.add(
    "POST", "/api/v1/admin/themes", access=admin("operator", "superadmin"), tags=("campaigns",), body=ThemeIn,
    response=ThemeOut, status=201, summary="Create a theme", errors=(errors.Conflict,),
)  # fmt: skip
async def create_theme(request: web.Request, body: ThemeIn) -> ThemeOut:
    try:
        async with in_transaction():
            theme = await Theme.create(name=body.name, description=body.description)
            await audit.record(actor_of(request), "theme.create", "theme", theme.id, None, body.model_dump())
    except IntegrityError:
        raise errors.Conflict(f"a theme named {body.name!r} exists", details={"field": "name"}) from None
    return ThemeOut.model_validate(theme)


@routes.add(
    "GET", "/api/v1/admin/themes", access=admin(), tags=("campaigns",), query=PageQuery, response=ThemePageOut,
    summary="List themes",
)  # fmt: skip
async def list_themes(request: web.Request, query: PageQuery) -> ThemePageOut:
    page, nxt = await newest_first(Theme.all(), query.cursor, query.limit)
    return ThemePageOut(items=[ThemeOut.model_validate(t) for t in page], next_cursor=nxt)


@routes.add(
    "PATCH", "/api/v1/admin/themes/{id}", access=admin("operator", "superadmin"), tags=("campaigns",),
    body=ThemePatchIn, response=ThemeOut, summary="Rename a theme or change its description (audited)",
    errors=(errors.NotFound, errors.Conflict),
)  # fmt: skip
async def update_theme(request: web.Request, body: ThemePatchIn) -> ThemeOut:
    changes = body.model_dump(exclude_none=True)
    theme = await themes.update_theme(path_int(request, "id"), changes, actor_of(request))
    if "name" in changes:  # the feed's themed sections show the name: reload its campaigns
        await catalog_changed(request.app[REDIS], await themes.campaigns_of(theme.id))
    return ThemeOut.model_validate(theme)


@routes.add(
    "DELETE", "/api/v1/admin/themes/{id}", access=admin("operator", "superadmin"), tags=("campaigns",),
    status=204, summary="Delete a theme no campaign uses (audited); one in use is 409 theme_in_use",
    errors=(errors.NotFound, errors.ThemeInUse),
)  # fmt: skip
async def delete_theme(request: web.Request) -> web.Response:
    await themes.delete_theme(path_int(request, "id"), actor_of(request))
    return web.Response(status=204)
