"""The live state of a bargain, assist, red packet or lucky draw campaign as the console
shows it: pages of its bargains and of its draws (newest first), any admin role."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import PageQuery
from models.bargains import Bargain
from server.access import ANY_ADMIN
from server.routing import RouteTable, path_int
from services.core import Out, errors
from services.forms import bargain_page, draw_page, worth

routes = RouteTable()


class AdminBargainOut(Out):
    id: int
    customer_id: int
    mode: str = Field(description="bargain, assist or red_packet")
    start_price: int = Field(description="fen (red packet: the points left to expand when opened)")
    floor_price: int
    price: int = Field(description="fen now (red packet: the points still to expand)")
    value: int | None = Field(description="red packet: the points the packet holds now; null otherwise")
    helpers: int
    helpers_needed: int | None = Field(description="null: finished when the price reaches the floor")
    expires_at: datetime
    finished_at: datetime | None
    claimed_at: datetime | None
    created_at: datetime


class AdminBargainPageOut(Out):
    items: list[AdminBargainOut]
    next_cursor: str | None


class AdminDrawOut(Out):
    id: int
    draw_id: str
    customer_id: int
    prize_key: str
    prize_kind: str = Field(description="coupon, points or none")
    prize_points: int
    entry: str = Field(description="free or points")
    points_cost: int
    day: str = Field(description="the day it counted against, in the draw's time zone")
    drawn_at: datetime


class AdminDrawPageOut(Out):
    items: list[AdminDrawOut]
    next_cursor: str | None


def _bargain_out(b: Bargain) -> AdminBargainOut:
    return AdminBargainOut(
        id=b.id, customer_id=b.customer_id, mode=b.mode, start_price=b.start_price, floor_price=b.floor_price,
        price=b.price, value=worth(b, b.price) if b.mode == "red_packet" else None,
        helpers=b.helpers, helpers_needed=b.helpers_needed or None, expires_at=b.expires_at,
        finished_at=b.finished_at, claimed_at=b.claimed_at, created_at=b.created_at,
    )  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/bargains", access=ANY_ADMIN, tags=("forms",), query=PageQuery,
    response=AdminBargainPageOut,
    summary="A bargain, assist or red_packet campaign's bargains (newest first; as written to the database)",
    errors=(errors.NotFound, errors.ValidationFailed),
)  # fmt: skip
async def admin_list_bargains(request: web.Request, query: PageQuery) -> AdminBargainPageOut:
    page, nxt = await bargain_page(path_int(request, "id"), cursor=query.cursor, limit=query.limit)
    return AdminBargainPageOut(items=[_bargain_out(b) for b in page], next_cursor=nxt)


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/draws", access=ANY_ADMIN, tags=("forms",), query=PageQuery,
    response=AdminDrawPageOut,
    summary="A lucky_draw campaign's draws and their prizes (newest first; as written to the database)",
    errors=(errors.NotFound, errors.ValidationFailed),
)  # fmt: skip
async def admin_list_draws(request: web.Request, query: PageQuery) -> AdminDrawPageOut:
    page, nxt = await draw_page(path_int(request, "id"), cursor=query.cursor, limit=query.limit)
    return AdminDrawPageOut(items=[AdminDrawOut.model_validate(d) for d in page], next_cursor=nxt)
