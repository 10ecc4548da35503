"""The password login shared by admins and staff: throttle, verify, issue a session."""

from __future__ import annotations

from aiohttp import web

from handlers.common.actors import actor_of
from handlers.common.request_meta import client_address
from handlers.common.schemas import PasswordLoginIn, TokenPairOut
from server.keys import PRINCIPAL, REDIS, SETTINGS
from services.accounts import LoginLimiter, sessions
from services.accounts import operators as accounts
from services.core import Principal, errors

#: What a password change may answer besides the generic errors (admin and staff alike).
PASSWORD_CHANGE_ERRORS: tuple[type[errors.AppError], ...] = (
    errors.WrongPassword, errors.PasswordTooShort, errors.PasswordContainsUsername, errors.PasswordTooCommon,
    errors.TooManyAttempts,
)  # fmt: skip


def login_limiter(request: web.Request) -> LoginLimiter:
    settings = request.app[SETTINGS]
    return LoginLimiter(request.app[REDIS], settings.login_max_failures, settings.login_lockout_seconds)


async def change_password(request: web.Request, realm: accounts.Realm, old: str, new: str) -> TokenPairOut:
    """The caller's own password change (under the login throttle), then a new session."""
    me = request[PRINCIPAL]
    principal = await accounts.change_password(
        request.app[REDIS], actor_of(request), realm, me.id, old, new,
        limiter=login_limiter(request), address=client_address(request),
    )  # fmt: skip
    return await new_session(request, principal)


async def password_login(
    request: web.Request, realm: accounts.Realm, body: PasswordLoginIn
) -> tuple[Principal, sessions.TokenPair]:
    limiter = login_limiter(request)
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
