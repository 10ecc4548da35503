"""Token epochs: revoking the access tokens an admin or staff account already holds.

Access tokens are stateless, so logging out or disabling an account used to leave its
access tokens valid until they expired. Each admin and staff account now has a
``token_epoch`` column, copied into its access tokens (claim ``epc``) at issue. Raising
the epoch (disable, role/store change, password change or reset) makes every token
issued before unusable on the very next request.

The current epoch of each account lives in Redis (``account-epoch:<kind>:<id>``) so
every process of every machine agrees; a miss is filled from the database. There is no
in-process cache on purpose: a process holding a stale epoch would let a disabled
clerk's token through until it expired, which is what this exists to prevent. The cost
is one Redis GET per admin or staff request; customer requests never come here.

Ordering, so Redis never goes back to an older epoch:
- a bump commits the database first, then raises Redis with a "set if greater" script;
- a fill after a miss writes with ``SET NX``, so it cannot overwrite a bump that
  happened between its database read and its write.
Tokens older than the current epoch are refused; a token newer than Redis (issued in the
instant between a bump's commit and its Redis write) is let through.
"""

from __future__ import annotations

from typing import Literal

from tortoise.expressions import F

from models.admins import Admin
from models.stores import StaffMember
from services.accounts import sessions
from services.core import AnyRedis, Principal, errors

OperatorKind = Literal["admin", "staff"]

_RAISE_TO = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return wanted
end
return current
"""


def epoch_key(kind: str, account_id: int) -> str:
    return f"account-epoch:{kind}:{account_id}"


async def _read_database(kind: str, account_id: int) -> int | None:
    """The account's epoch, or None when it does not exist or is disabled."""
    account: Admin | StaffMember | None
    if kind == "admin":
        account = await Admin.get_or_none(id=account_id, is_active=True).only("id", "token_epoch")
    else:
        account = await StaffMember.get_or_none(id=account_id, is_active=True, store__is_active=True)
    return None if account is None else account.token_epoch


async def check_session(redis: AnyRedis, principal: Principal) -> None:
    """Refuse an admin or staff token issued before its account's current epoch, or for
    an account that no longer exists or is disabled. Precondition: ``principal`` is not a
    customer (callers skip customers: their tokens carry no epoch)."""
    key = epoch_key(principal.kind, principal.id)
    raw = await redis.get(key)
    if raw is None:
        found = await _read_database(principal.kind, principal.id)
        if found is None:
            raise errors.InvalidToken("this account is disabled")
        # NX: a bump that committed after our read has already written a newer value.
        await redis.set(key, found, nx=True)
        current = found
    else:
        current = int(raw)
    if principal.epoch < current:
        raise errors.InvalidToken("this session was ended: log in again")


async def bump(redis: AnyRedis, kind: OperatorKind, account_id: int) -> int:
    """Raise the account's epoch and revoke its refresh tokens: every session it holds ends
    on its next request. Call after (outside) the transaction of the change that causes it,
    so the epoch Redis holds is never one the database has not committed. Returns the new
    epoch."""
    model = Admin if kind == "admin" else StaffMember
    await model.filter(id=account_id).update(token_epoch=F("token_epoch") + 1)
    account = await model.get(id=account_id)
    await sessions.revoke_subject(kind, account_id)
    await redis.eval(_RAISE_TO, 1, epoch_key(kind, account_id), account.token_epoch)
    return account.token_epoch
