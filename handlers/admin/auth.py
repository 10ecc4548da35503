"""Admin sign-in, identity and password; superadmins create, list, edit and reset admins.

Managing admins (list, read, edit, reset a password) is for superadmins only: any other
role could otherwise raise itself or lock a superadmin out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from handlers.common.login_flow import PASSWORD_CHANGE_ERRORS, change_password, password_login
from handlers.common.schemas import (
    OneTimePasswordOut,
    PageQuery,
    PasswordChangeIn,
    PasswordLoginIn,
    TokenPairOut,
    refuse_empty,
)
from models.admins import Admin
from server.access import ANY_ADMIN, PUBLIC, admin
from server.keys import REDIS
from server.routing import RouteTable, path_int, principal_of
from services.accounts import operators as accounts
from services.core import Body, DisplayName, Out, errors, newest_first

routes = RouteTable()

AdminRole = Literal["operator", "reviewer", "approver", "superadmin"]


SUPERADMIN = admin("superadmin")

#: An openid of the mini program (WeChat's are 28 characters of this alphabet).
WeChatOpenid = Annotated[str, Field(min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class AdminOut(Out):
    id: int
    username: str
    display_name: str
    role: AdminRole
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    wechat_openid: str | None = Field(description="the admin's openid in the mini program, where alerts are sent")
    alert_wechat: bool = Field(description="alerts are sent to wechat_openid as subscribe messages")


class AdminTokenOut(TokenPairOut):
    admin: AdminOut
    password_change_required: bool = Field(
        description="the password was reset: every route but POST /api/v1/admin/me/password (and logout) "
        "answers 403 password_change_required until it is changed"
    )


class AdminPageOut(Out):
    items: list[AdminOut]
    next_cursor: str | None


class AdminPageQuery(PageQuery):
    role: AdminRole | None = None
    active: bool | None = None


class AdminPatchIn(Body):
    role: AdminRole | None = None
    display_name: DisplayName | None = Field(default=None, min_length=1, max_length=64)
    active: bool | None = None
    wechat_openid: WeChatOpenid | None = Field(default=None, description="null unbinds it (and turns alerts off)")
    alert_wechat: bool | None = Field(default=None, description="needs wechat_openid bound")


class AdminSelfPatchIn(Body):
    wechat_openid: WeChatOpenid | None = Field(
        default=None, description="your openid in the mini program, where alerts are sent; null unbinds it"
    )
    alert_wechat: bool | None = Field(
        default=None,
        description="receive each alert raised as a subscribe message (accept the alert template in the mini"
        " program: one message per acceptance); needs wechat_openid bound",
    )


class AdminIn(Body):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=10, max_length=256)
    role: AdminRole
    display_name: DisplayName = Field(default="", max_length=64)


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
        password_change_required=principal.password_change,
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
    account = await accounts.create_admin(
        body.username, body.password, body.role, actor_of(request), display_name=body.display_name
    )
    return AdminOut.model_validate(account)


@routes.add(
    "GET", "/api/v1/admin/admins", access=SUPERADMIN, tags=("admin",), query=AdminPageQuery,
    response=AdminPageOut, summary="List admin accounts, newest first (filter by role, active)",
)  # fmt: skip
async def list_admins(request: web.Request, query: AdminPageQuery) -> AdminPageOut:
    rows = Admin.all()
    if query.role is not None:
        rows = rows.filter(role=query.role)
    if query.active is not None:
        rows = rows.filter(is_active=query.active)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return AdminPageOut(items=[AdminOut.model_validate(a) for a in page], next_cursor=nxt)


@routes.add(
    "GET", "/api/v1/admin/admins/{id}", access=SUPERADMIN, tags=("admin",), response=AdminOut,
    summary="One admin account", errors=(errors.NotFound,),
)  # fmt: skip
async def get_admin(request: web.Request) -> AdminOut:
    account = await Admin.get_or_none(id=path_int(request, "id"))
    if account is None:
        raise errors.NotFound("no such admin")
    return AdminOut.model_validate(account)


@routes.add(
    "PATCH", "/api/v1/admin/admins/{id}", access=SUPERADMIN, tags=("admin",), body=AdminPatchIn,
    response=AdminOut, errors=(errors.NotFound, errors.LastSuperadmin),
    summary="Change an admin's role, display name, active flag or WeChat binding for alerts (audited); a role "
    "change or a disable ends the admin's sessions at once; the last active superadmin cannot be demoted or disabled",
)  # fmt: skip
async def patch_admin(request: web.Request, body: AdminPatchIn) -> AdminOut:
    refuse_empty(body)
    admin_id = path_int(request, "id")
    given = body.model_fields_set
    account = None
    if given & {"role", "display_name", "active"}:
        account = await accounts.update_admin(
            request.app[REDIS], actor_of(request), admin_id,
            role=body.role, display_name=body.display_name, active=body.active,
        )  # fmt: skip
    if given & {"wechat_openid", "alert_wechat"}:
        account = await _set_wechat(request, admin_id, body.wechat_openid, body.alert_wechat, given)
    assert account is not None  # refuse_empty: some field was given
    return AdminOut.model_validate(account)


async def _set_wechat(
    request: web.Request, admin_id: int, openid: str | None, alerts: bool | None, given: set[str]
) -> Admin:
    # An explicit null openid unbinds it; left out, it stays.
    unbind = "wechat_openid" in given and openid is None
    return await accounts.set_admin_wechat(actor_of(request), admin_id, openid=openid, unbind=unbind, alerts=alerts)


@routes.add(
    "PATCH", "/api/v1/admin/me", access=ANY_ADMIN, tags=("admin",), body=AdminSelfPatchIn, response=AdminOut,
    summary="Bind your WeChat openid and opt in to alerts as subscribe messages (audited as admin.wechat)",
)  # fmt: skip
async def patch_admin_me(request: web.Request, body: AdminSelfPatchIn) -> AdminOut:
    refuse_empty(body)
    account = await _set_wechat(
        request, principal_of(request).id, body.wechat_openid, body.alert_wechat, body.model_fields_set
    )
    return AdminOut.model_validate(account)


@routes.add(
    "POST", "/api/v1/admin/admins/{id}/reset-password", access=SUPERADMIN, tags=("admin",),
    response=OneTimePasswordOut, errors=(errors.NotFound,),
    summary="Give an admin a one-time password (shown once) to change at the next login; ends its sessions",
)  # fmt: skip
async def reset_admin_password(request: web.Request) -> OneTimePasswordOut:
    one_time = await accounts.reset_password(request.app[REDIS], actor_of(request), "admin", path_int(request, "id"))
    return OneTimePasswordOut(one_time_password=one_time)


@routes.add(
    "POST", "/api/v1/admin/me/password", access=ANY_ADMIN, tags=("admin",), body=PasswordChangeIn,
    response=TokenPairOut, open_during_password_change=True,
    errors=PASSWORD_CHANGE_ERRORS,
    summary="Change your own password (old + new, see the password rules); ends every session of the account "
    "and answers a new token pair",
)  # fmt: skip
async def change_admin_password(request: web.Request, body: PasswordChangeIn) -> TokenPairOut:
    return await change_password(request, "admin", body.old_password, body.new_password)
