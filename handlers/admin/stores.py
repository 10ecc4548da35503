"""Stores and their staff accounts, managed by superadmins (any admin may read them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, Field

from handlers.common.actors import actor_of
from handlers.common.schemas import OneTimePasswordOut, PageQuery, StoreOut, refuse_empty
from models.stores import StaffMember, Store
from server.access import admin
from server.keys import REDIS
from server.routing import RouteTable, path_int
from services.accounts import operators as accounts
from services.core import Body, DisplayName, Out, errors, newest_first

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
    address: Text = Field(default="", max_length=255)


class StorePatchIn(Body):
    name: Text | None = Field(default=None, min_length=1, max_length=128)
    address: Text | None = Field(default=None, max_length=255)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    state: Literal["open", "closed"] | None = Field(default=None, description="a closed store takes no redemptions")


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
    role: Literal["clerk", "manager"] | None = None
    active: bool | None = None


class StaffPatchIn(Body):
    display_name: DisplayName | None = Field(default=None, min_length=1, max_length=64)
    role: Literal["clerk", "manager"] | None = None
    store_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    active: bool | None = None


@routes.add(
    "POST", "/api/v1/admin/stores", access=STORE_ADMINS, tags=("admin",), body=StoreIn, response=StoreOut,
    status=201, summary="Create a store", errors=(errors.Conflict,),
)  # fmt: skip
async def create_store(request: web.Request, body: StoreIn) -> StoreOut:
    store = await accounts.create_store(
        body.code, body.name, body.city, body.latitude, body.longitude, actor_of(request), address=body.address
    )
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
    member = await accounts.create_staff(
        body.username, body.password, body.display_name, body.role, body.store_id, actor_of(request)
    )
    return StaffOut.of(member)


@routes.add(
    "GET", "/api/v1/admin/staff", access=admin(), tags=("admin",), query=StaffPageQuery, response=StaffPageOut,
    summary="List staff accounts, newest first (filter by store, role, active)",
)  # fmt: skip
async def list_staff(request: web.Request, query: StaffPageQuery) -> StaffPageOut:
    rows = StaffMember.all()
    if query.store_id is not None:
        rows = rows.filter(store_id=query.store_id)
    if query.role is not None:
        rows = rows.filter(role=query.role)
    if query.active is not None:
        rows = rows.filter(is_active=query.active)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return StaffPageOut(items=[StaffOut.of(m) for m in page], next_cursor=nxt)


@routes.add(
    "GET", "/api/v1/admin/stores/{id}", access=admin(), tags=("admin",), response=StoreOut,
    summary="One store", errors=(errors.NotFound,),
)  # fmt: skip
async def get_store(request: web.Request) -> StoreOut:
    store = await Store.get_or_none(id=path_int(request, "id"))
    if store is None:
        raise errors.NotFound("no such store")
    return StoreOut.model_validate(store)


@routes.add(
    "PATCH", "/api/v1/admin/stores/{id}", access=STORE_ADMINS, tags=("admin",), body=StorePatchIn,
    response=StoreOut, errors=(errors.NotFound,),
    summary="Change a store's name, address, coordinates or opening state (audited); a closed store takes "
    "no redemptions (403 store_closed)",
)  # fmt: skip
async def patch_store(request: web.Request, body: StorePatchIn) -> StoreOut:
    refuse_empty(body)
    changes = {name: getattr(body, name) for name in body.model_fields_set if getattr(body, name) is not None}
    store = await accounts.update_store(actor_of(request), path_int(request, "id"), changes)
    return StoreOut.model_validate(store)


@routes.add(
    "GET", "/api/v1/admin/staff/{id}", access=admin(), tags=("admin",), response=StaffOut,
    summary="One staff account", errors=(errors.NotFound,),
)  # fmt: skip
async def get_staff(request: web.Request) -> StaffOut:
    member = await StaffMember.get_or_none(id=path_int(request, "id"))
    if member is None:
        raise errors.NotFound("no such staff member")
    return StaffOut.of(member)


@routes.add(
    "PATCH", "/api/v1/admin/staff/{id}", access=STORE_ADMINS, tags=("admin",), body=StaffPatchIn,
    response=StaffOut, errors=(errors.NotFound,),
    summary="Change a staff member's name, role, store or active flag (audited); a role or store change or a "
    "disable ends the member's sessions at once (the access tokens already held too)",
)  # fmt: skip
async def patch_staff(request: web.Request, body: StaffPatchIn) -> StaffOut:
    refuse_empty(body)
    member = await accounts.update_staff(
        request.app[REDIS], actor_of(request), path_int(request, "id"),
        display_name=body.display_name, role=body.role, store_id=body.store_id, active=body.active,
    )  # fmt: skip
    return StaffOut.of(member)


@routes.add(
    "POST", "/api/v1/admin/staff/{id}/reset-password", access=STORE_ADMINS, tags=("admin",),
    response=OneTimePasswordOut, errors=(errors.NotFound,),
    summary="Give a staff member a one-time password (shown once) to change at the next login; ends their sessions",
)  # fmt: skip
async def reset_staff_password(request: web.Request) -> OneTimePasswordOut:
    one_time = await accounts.reset_password(request.app[REDIS], actor_of(request), "staff", path_int(request, "id"))
    return OneTimePasswordOut(one_time_password=one_time)
