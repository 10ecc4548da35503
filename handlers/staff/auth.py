"""Store staff sign-in and identity."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.login_flow import PASSWORD_CHANGE_ERRORS, change_password, password_login
from handlers.common.schemas import PasswordChangeIn, PasswordLoginIn, StoreOut, TokenPairOut
from models.stores import StaffMember
from server.access import ANY_STAFF, PUBLIC
from server.routing import RouteTable, principal_of
from services.core import Out, errors

routes = RouteTable()


class StaffSelfOut(Out):
    id: int
    username: str
    display_name: str
    role: Literal["clerk", "manager"]
    store: StoreOut


class StaffTokenOut(TokenPairOut):
    staff: StaffSelfOut
    password_change_required: bool = Field(
        description="the password was reset: every route but POST /api/v1/staff/me/password (and logout) "
        "answers 403 password_change_required until it is changed"
    )


def _self_out(member: StaffMember) -> StaffSelfOut:
    return StaffSelfOut(
        id=member.id,
        username=member.username,
        display_name=member.display_name,
        role=member.role,  # type: ignore[arg-type]  # a str column; the model validates the Literal
        store=StoreOut.model_validate(member.store),
    )


@routes.add(
    "POST", "/api/v1/staff/auth/login", access=PUBLIC, tags=("staff",), body=PasswordLoginIn,
    response=StaffTokenOut, summary="Staff password login; the token is bound to the staff member's store",
    errors=(errors.InvalidCredentials, errors.TooManyAttempts),
)  # fmt: skip
async def staff_login(request: web.Request, body: PasswordLoginIn) -> StaffTokenOut:
    principal, pair = await password_login(request, "staff", body)
    member = await StaffMember.get(id=principal.id).select_related("store")
    return StaffTokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        staff=_self_out(member),
        password_change_required=principal.password_change,
    )


@routes.add(
    "GET",
    "/api/v1/staff/me",
    access=ANY_STAFF,
    tags=("staff",),
    response=StaffSelfOut,
    summary="The calling staff member and store",
)
async def staff_me(request: web.Request) -> StaffSelfOut:
    member = await StaffMember.get_or_none(id=principal_of(request).id, is_active=True).select_related("store")
    if member is None:
        raise errors.InvalidToken("this account is disabled")
    return _self_out(member)


@routes.add(
    "POST", "/api/v1/staff/me/password", access=ANY_STAFF, tags=("staff",), body=PasswordChangeIn,
    response=TokenPairOut, open_during_password_change=True,
    errors=PASSWORD_CHANGE_ERRORS,
    summary="Change your own password (old + new, see the password rules); ends every session of the account "
    "and answers a new token pair",
)  # fmt: skip
async def change_staff_password(request: web.Request, body: PasswordChangeIn) -> TokenPairOut:
    return await change_password(request, "staff", body.old_password, body.new_password)
