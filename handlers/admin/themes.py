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
from server.routing import RouteTable
from services.core import Body, Out, audit, errors, newest_first

routes = RouteTable()


class ThemeIn(Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)


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
