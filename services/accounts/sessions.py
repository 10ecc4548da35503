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

from models.admins import Admin
from models.sessions import RefreshToken
from models.stores import StaffMember
from services.core import Principal, errors, issue_access_token


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def account_principal(account: Admin | StaffMember) -> Principal:
    """The principal to issue tokens for: role, store, token epoch and the pending password
    change as the account has them now."""
    if isinstance(account, StaffMember):
        return Principal(
            kind="staff", id=account.id, role=account.role, store_id=account.store_id,
            epoch=account.token_epoch, password_change=account.must_change_password,
        )  # fmt: skip
    return Principal(
        kind="admin", id=account.id, role=account.role, epoch=account.token_epoch,
        password_change=account.must_change_password,
    )  # fmt: skip


async def _current_principal(kind: str, subject_id: int) -> Principal | None:
    """An admin's or staff member's principal read afresh (None if disabled or gone): a
    rotated token never keeps a role, store or epoch the account no longer has."""
    account: Admin | StaffMember | None
    if kind == "admin":
        account = await Admin.get_or_none(id=subject_id, is_active=True)
    else:
        account = await StaffMember.get_or_none(id=subject_id, is_active=True, store__is_active=True)
    return None if account is None else account_principal(account)


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
        principal: Principal | None = None
        if claimed == 1:
            if row.subject_kind == "customer":
                principal = Principal(kind="customer", id=row.subject_id)
            else:
                principal = await _current_principal(row.subject_kind, row.subject_id)
            if principal is not None:
                pair = await start_session(
                    principal, secret=secret, access_ttl=access_ttl, refresh_ttl=refresh_ttl, family_id=row.family_id
                )
                return principal, pair
    if claimed == 1:  # the account is disabled: its session ends here
        await revoke_family(row.family_id)
        raise errors.InvalidRefreshToken("this account is disabled")
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
