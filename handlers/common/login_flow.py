"""The password login shared by admins and staff: throttle, verify, issue a session."""

from __future__ import annotations

from aiohttp import web

from handlers.common.request_meta import client_address
from handlers.common.schemas import PasswordLoginIn, TokenPairOut
from server.keys import REDIS, SETTINGS
from services.accounts import LoginLimiter, sessions
from services.accounts import operators as accounts
from services.core import Principal


async def password_login(
    request: web.Request, realm: accounts.Realm, body: PasswordLoginIn
) -> tuple[Principal, sessions.TokenPair]:
    settings = request.app[SETTINGS]
    limiter = LoginLimiter(request.app[REDIS], settings.login_max_failures, settings.login_lockout_seconds)
    principal = await accounts.password_login(realm, body.username, body.password, client_address(request), limiter)
    return principal, await _start(request, principal)


async def _start(request: web.Request, principal: Principal) -> sessions.TokenPair:
    settings = request.app[SETTINGS]
    return await sessions.start_session(
        principal,
        secret=settings.secret_key,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )


async def new_session(request: web.Request, principal: Principal) -> TokenPairOut:
    """A fresh token pair for ``principal`` (after a password change ended the old ones)."""
    pair = await _start(request, principal)
    return TokenPairOut(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)
