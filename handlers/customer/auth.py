"""Customer sign-in through WeChat, token refresh and logout (refresh/logout serve every kind)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import TokenPairOut
from handlers.customer.me import UserOut
from models.customers import Customer
from server.access import PUBLIC
from server.keys import JOURNEY, SETTINGS, WECHAT
from server.routing import RouteTable
from services.accounts import customers, sessions
from services.accounts import operators as accounts
from services.activity import referrals
from services.automation import engine as automation
from services.core import Body, Principal, errors

routes = RouteTable()


class WeChatLoginIn(Body):
    code: str = Field(min_length=1, max_length=128, description="the code from wx.login()")
    invite_code: str | None = Field(
        default=None, max_length=64,
        description="the inviter's code from a shared link; it credits the inviter only when this login creates "
        "the customer. An unknown or own code is ignored, never an error",
    )  # fmt: skip


class CustomerTokenOut(TokenPairOut):
    user: UserOut
    invite: Literal["credited", "ignored"] | None = Field(
        default=None, description="what became of invite_code: credited, ignored (see the docs), null when none sent"
    )


class RefreshIn(Body):
    refresh_token: str = Field(min_length=1, max_length=256)


@routes.add(
    "POST", "/api/v1/auth/wechat/login", access=PUBLIC, tags=("auth",), body=WeChatLoginIn,
    response=CustomerTokenOut, summary="Log in with a wx.login() code (code2Session)",
    errors=(errors.InvalidLoginCode, errors.LoginCodeUsed, errors.WeChatRateLimited, errors.WeChatUserBlocked,
            errors.WeChatBusy, errors.WeChatUnavailableError),
)  # fmt: skip
async def wechat_login(request: web.Request, body: WeChatLoginIn) -> CustomerTokenOut:
    client = request.app[WECHAT]
    result = await customers.call_wechat(lambda: client.code2session(body.code))
    invite = referrals.Invite(request.app[JOURNEY], body.invite_code)
    registration = automation.Registration(request.app[JOURNEY])

    async def on_create(customer: Customer) -> None:
        await invite.accept(customer)
        await registration.accept(customer)

    customer, created = await customers.login(result.openid, result.session_key, result.unionid, on_create=on_create)
    invite_status = await invite.finish(customer, created)
    await registration.finish()
    settings = request.app[SETTINGS]
    pair = await sessions.start_session(
        Principal(kind="customer", id=customer.id),
        secret=settings.secret_key,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    return CustomerTokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user=UserOut.of(customer),
        invite=invite_status,
    )


@routes.add(
    "POST", "/api/v1/auth/refresh", access=PUBLIC, tags=("auth",), body=RefreshIn, response=TokenPairOut,
    summary="Rotate a refresh token (any kind of account); reusing an old one revokes the session",
    errors=(errors.InvalidRefreshToken, errors.RefreshTokenReused),
)  # fmt: skip
async def refresh(request: web.Request, body: RefreshIn) -> TokenPairOut:
    settings = request.app[SETTINGS]
    principal, pair = await sessions.rotate(
        body.refresh_token,
        secret=settings.secret_key,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    if not await accounts.is_active(principal):
        await sessions.end_session(pair.refresh_token)
        raise errors.InvalidRefreshToken("this account is disabled")
    return TokenPairOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


@routes.add(
    "POST", "/api/v1/auth/logout", access=PUBLIC, tags=("auth",), body=RefreshIn, status=204,
    summary="End the session of a refresh token (idempotent)",
)  # fmt: skip
async def logout(request: web.Request, body: RefreshIn) -> web.Response:
    await sessions.end_session(body.refresh_token)
    return web.Response(status=204)
