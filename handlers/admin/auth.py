"""Admin sign-in and identity; superadmins create further admins."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.login_flow import password_login
from handlers.common.schemas import PasswordLoginIn, TokenPairOut
from models.admins import Admin
from server.access import ANY_ADMIN, PUBLIC, admin
from server.routing import RouteTable, principal_of
from services.accounts import operators as accounts
from services.core import Body, Out, errors

routes = RouteTable()

AdminRole = Literal["operator", "reviewer", "approver", "superadmin"]


class AdminOut(Out):
    id: int
    username: str
    role: AdminRole
    is_active: bool
    created_at: datetime


class AdminTokenOut(TokenPairOut):
    admin: AdminOut


class AdminIn(Body):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=10, max_length=256)
    role: AdminRole


@routes.add(
    "POST", "/api/v1/admin/auth/login", access=PUBLIC, tags=("admin",), body=PasswordLoginIn,
    response=AdminTokenOut, summary="Admin password login (failed attempts are throttled)",
    errors=(errors.InvalidCredentials, errors.TooManyAttempts),
)  # fmt: skip
async def admin_login(request: web.Request, body: PasswordLoginIn) -> AdminTokenOut:
    principal, pair = await password_login(request, "admin", body)
    account = await Admin.get(id=principal.id)
    return AdminTokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        admin=AdminOut.model_validate(account),
    )


@routes.add(
    "GET", "/api/v1/admin/me", access=ANY_ADMIN, tags=("admin",), response=AdminOut, summary="The calling admin"
)
async def admin_me(request: web.Request) -> AdminOut:
    account = await Admin.get_or_none(id=principal_of(request).id, is_active=True)
    if account is None:
        raise errors.InvalidToken("this account is disabled")
    return AdminOut.model_validate(account)


@routes.add(
    "POST", "/api/v1/admin/admins", access=admin("superadmin"), tags=("admin",), body=AdminIn,
    response=AdminOut, status=201, summary="Create an admin account", errors=(errors.Conflict,),
)  # fmt: skip
async def create_admin(request: web.Request, body: AdminIn) -> AdminOut:
    account = await accounts.create_admin(body.username, body.password, body.role)
    return AdminOut.model_validate(account)
