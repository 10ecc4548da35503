"""Sessions: an access token plus a rotating refresh token.

Refresh tokens are random, stored hashed, single-use. Each rotation issues a new token in
the same family; presenting a token that was already used means it was stolen or
replayed, so the whole family is revoked (RFC 6819 / OAuth 2.0 Security BCP).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from models.sessions import RefreshToken
from services.core import Principal, errors, issue_access_token


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


async def start_session(
    principal: Principal, *, secret: str, access_ttl: int, refresh_ttl: int, family_id: str | None = None
) -> TokenPair:
    """Issue a token pair; a new family unless ``family_id`` continues one."""
    refresh = secrets.token_urlsafe(32)
    await RefreshToken.create(
        token_hash=_hash(refresh),
        family_id=family_id or secrets.token_hex(16),
        subject_kind=principal.kind,
        subject_id=principal.id,
        role=principal.role,
        store_id=principal.store_id,
        expires_at=_now() + timedelta(seconds=refresh_ttl),
    )
    return TokenPair(issue_access_token(secret, principal, access_ttl), refresh, access_ttl)


async def rotate(refresh_token: str, *, secret: str, access_ttl: int, refresh_ttl: int) -> tuple[Principal, TokenPair]:
    """Exchange a refresh token for a new pair.

    The old token is marked used with a compare-and-set, so of two concurrent rotations
    exactly one wins; the loser is treated as reuse and revokes the family.
    """
    token_hash = _hash(refresh_token)
    now = _now()
    async with in_transaction():
        row = await RefreshToken.get_or_none(token_hash=token_hash)
        if row is None:
            raise errors.InvalidRefreshToken()
        if row.revoked_at is not None or row.expires_at <= now:
            raise errors.InvalidRefreshToken()
        claimed = await RefreshToken.filter(id=row.id, used_at=None, revoked_at=None).update(used_at=now)
        if claimed == 1:
            principal = Principal(
                kind=row.subject_kind,  # type: ignore[arg-type]  # a str column, written from a Principal's kind
                id=row.subject_id,
                role=row.role,
                store_id=row.store_id,
            )
            pair = await start_session(
                principal, secret=secret, access_ttl=access_ttl, refresh_ttl=refresh_ttl, family_id=row.family_id
            )
            return principal, pair
    # Reuse: revoke outside the failed branch's transaction so the revocation commits.
    await revoke_family(row.family_id)
    raise errors.RefreshTokenReused()


async def revoke_family(family_id: str) -> int:
    return await RefreshToken.filter(family_id=family_id, revoked_at=None).update(revoked_at=_now())


async def end_session(refresh_token: str) -> None:
    """Log out: revoke the token's whole family. Unknown tokens are ignored (idempotent)."""
    row = await RefreshToken.get_or_none(token_hash=_hash(refresh_token))
    if row is not None:
        await revoke_family(row.family_id)


async def revoke_subject(kind: str, subject_id: int) -> int:
    """Revoke every session of one account (e.g. when it is deactivated)."""
    return await RefreshToken.filter(subject_kind=kind, subject_id=subject_id, revoked_at=None).update(
        revoked_at=_now()
    )
