"""Signed access tokens (JWT, HS256): stateless, short-lived, verified without I/O.

Access tokens are checked on every request, including the coupon grab, so verifying one
costs no database or Redis round trip. Revocation works through the refresh token: a
logged-out or revoked session stops at the access token's expiry (ACCESS_TOKEN_TTL).
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from server.access import Principal
from services import errors

_ALGORITHM = "HS256"
_AUDIENCE = "wxcampaign"
_KINDS = ("customer", "staff", "admin")


def issue_access_token(secret: str, principal: Principal, ttl_seconds: int, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": str(principal.id),
        "knd": principal.kind,
        "aud": _AUDIENCE,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if principal.role is not None:
        claims["rol"] = principal.role
    if principal.store_id is not None:
        claims["sto"] = principal.store_id
    return jwt.encode(claims, _signing_key(secret), algorithm=_ALGORITHM)


def verify_access_token(secret: str, token: str) -> Principal:
    """Return the principal, or raise TokenExpired / InvalidToken."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(secret),
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["exp", "iat", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise errors.TokenExpired() from None
    except jwt.PyJWTError:
        raise errors.InvalidToken() from None
    kind = claims.get("knd")
    sub = claims.get("sub")
    if kind not in _KINDS or not isinstance(sub, str) or not sub.isdigit():
        raise errors.InvalidToken()
    role = claims.get("rol")
    store_id = claims.get("sto")
    return Principal(
        kind=kind,
        id=int(sub),
        role=role if isinstance(role, str) else None,
        store_id=store_id if isinstance(store_id, int) else None,
    )


def _signing_key(secret: str) -> str:
    # A purpose-specific key, so other uses of SECRET_KEY (QR signing) never share one.
    return "access-token:" + secret
