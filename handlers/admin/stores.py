"""Stores and their staff accounts, managed by superadmins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, Field

from handlers.common.schemas import PageQuery, StoreOut
from models.stores import StaffMember, Store
from server.access import admin
from server.routing import RouteTable
from services.accounts import operators as accounts
from services.core import Body, Out, errors, newest_first

routes = RouteTable()

STORE_ADMINS = admin("superadmin")

#: The largest id the database holds (BIGINT). JSON integers are unbounded, and a bigger
#: one would fail in the driver (a 500) instead of here (a 422).
MAX_ID = 2**63 - 1


def _storable(value: str) -> str:
    # Valid JSON ("\u0000") but no valid text for PostgreSQL, which would refuse the row.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_storable)]


class StoreIn(Body):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: Text = Field(min_length=1, max_length=128)
    city: Text = Field(min_length=1, max_length=64)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class StorePageOut(Out):
    items: list[StoreOut]
    next_cursor: str | None


class StaffIn(Body):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    display_name: Text = Field(min_length=1, max_length=64)
    role: Literal["clerk", "manager"]
    store_id: int = Field(ge=1, le=MAX_ID)


class StaffOut(Out):
    id: int
    username: str
    display_name: str
    role: Literal["clerk", "manager"]
    store_id: int
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, member: StaffMember) -> StaffOut:
        return cls(
            id=member.id,
            username=member.username,
            display_name=member.display_name,
            role=member.role,  # type: ignore[arg-type]  # a str column; StaffOut validates the Literal
            store_id=member.store_id,
            is_active=member.is_active,
            created_at=member.created_at,
        )


class StaffPageOut(Out):
    items: list[StaffOut]
    next_cursor: str | None


class StaffPageQuery(PageQuery):
    store_id: int | None = Field(default=None, ge=1, le=MAX_ID)


@routes.add(
    "POST", "/api/v1/admin/stores", access=STORE_ADMINS, tags=("admin",), body=StoreIn, response=StoreOut,
    status=201, summary="Create a store", errors=(errors.Conflict,),
)  # fmt: skip
async def create_store(request: web.Request, body: StoreIn) -> StoreOut:
    store = await accounts.create_store(body.code, body.name, body.city, body.latitude, body.longitude)
    return StoreOut.model_validate(store)


@routes.add(
    "GET", "/api/v1/admin/stores", access=admin(), tags=("admin",), query=PageQuery, response=StorePageOut,
    summary="List stores, newest first",
)  # fmt: skip
async def list_stores(request: web.Request, query: PageQuery) -> StorePageOut:
    page, nxt = await newest_first(Store.all(), query.cursor, query.limit)
    return StorePageOut(items=[StoreOut.model_validate(s) for s in page], next_cursor=nxt)


@routes.add(
    "POST", "/api/v1/admin/staff", access=STORE_ADMINS, tags=("admin",), body=StaffIn, response=StaffOut,
    status=201, summary="Create a staff account bound to one store", errors=(errors.Conflict,),
)  # fmt: skip
async def create_staff(request: web.Request, body: StaffIn) -> StaffOut:
    member = await accounts.create_staff(body.username, body.password, body.display_name, body.role, body.store_id)
    return StaffOut.of(member)


@routes.add(
    "GET", "/api/v1/admin/staff", access=admin(), tags=("admin",), query=StaffPageQuery, response=StaffPageOut,
    summary="List staff accounts, newest first, optionally of one store",
)  # fmt: skip
async def list_staff(request: web.Request, query: StaffPageQuery) -> StaffPageOut:
    rows = StaffMember.all()
    if query.store_id is not None:
        rows = rows.filter(store_id=query.store_id)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return StaffPageOut(items=[StaffOut.of(m) for m in page], next_cursor=nxt)
