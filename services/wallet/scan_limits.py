"""Throttling scans that find no voucher, per staff member and per store.

A till that types or scans codes which are not vouchers (an invalid QR payload or
barcode number, or a well-formed one naming no voucher) is either mistyping or guessing:
16-digit barcode numbers are easy to try by the hundred. So such failures are counted
over a fixed window of WINDOW_SECONDS (from the first failure), per staff member (STAFF_FAILURES) and per
store (STORE_FAILURES, several tills); over either, preview and redeem answer
``429 rate_limited`` with ``Retry-After`` until the window ends. Codes that are found
never count, whatever the verdict (used, expired, another store), so a busy till is
never slowed by its own sales. The first time a window reaches its limit, an audit entry
``redemption.scan_burst`` (entity: the store) records who, where and how many.

Failures are counted once settled; to keep concurrent guesses from all passing the check
before the first failure lands, the scans in flight are counted too, and capped
(STAFF_IN_FLIGHT, STORE_IN_FLIGHT: generous, since a till that times out resends
concurrently). ``acquire`` checks both and counts the scan in flight atomically; ``done``
ends it, adding a failure if it found no voucher. Each scope's keys share one hash tag
and one script updates them, so this runs on Redis Cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core import Actor, AnyRedis, audit, errors

#: Failed scans one staff member may make per window.
STAFF_FAILURES = 10
#: Failed scans one store (all its tills) may make per window.
STORE_FAILURES = 30
#: The counting window, seconds: a burst is this many failures within it.
WINDOW_SECONDS = 60
#: Scans one staff member, or store, may have in flight at once.
STAFF_IN_FLIGHT = 25
STORE_IN_FLIGHT = 75
#: An in-flight count left by a crashed process is forgotten after this, seconds.
_IN_FLIGHT_TTL = 30

# KEYS[1] failures, KEYS[2] in flight (one hash tag). ARGV[1] the most failures, ARGV[2]
# the most in flight, ARGV[3] the in-flight count's TTL.
# Returns 0 if the scan may go ahead (counted in flight), else the seconds to wait.
_ACQUIRE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 1 end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0
"""

# KEYS[1] failures, KEYS[2] in flight. ARGV[1] 1 if the scan found no voucher, ARGV[2]
# the window seconds. Ends the scan in flight; returns the failures in the window.
_DONE = """
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[1] == '1' then
  local f = redis.call('INCR', KEYS[1])
  if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  return f
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
"""

# KEYS[1] marker: set once per window; 1 if this call set it (the burst is new).
_FIRST = "return redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) and 1 or 0"


@dataclass(frozen=True)
class Scope:
    """One counted scope: a staff member or a store."""

    name: str
    tag: str
    limit: int
    in_flight: int

    @property
    def keys(self) -> list[str]:
        return [f"scan:{{{self.tag}}}:failures", f"scan:{{{self.tag}}}:in-flight"]


@dataclass(frozen=True)
class Attempt:
    """A scan in flight; hand it back to ``done``."""

    store_id: int
    staff_id: int


@dataclass(frozen=True)
class ScanLimiter:
    redis: AnyRedis

    def _scopes(self, store_id: int, staff_id: int) -> tuple[Scope, Scope]:
        return (
            Scope("staff", f"staff:{staff_id}", STAFF_FAILURES, STAFF_IN_FLIGHT),
            Scope("store", f"store:{store_id}", STORE_FAILURES, STORE_IN_FLIGHT),
        )

    async def _run(self, source: str, keys: list[str], *args: int) -> Any:
        return await self.redis.register_script(source)(keys=keys, args=list(args))

    async def acquire(self, store_id: int, staff_id: int) -> Attempt:
        """Start a scan for the staff member at the store, or raise RateLimited (with
        retry_after) if either is over its limit. Precondition: the caller hands the
        attempt to ``done`` whatever happens."""
        staff, store = self._scopes(store_id, staff_id)
        wait = int(await self._run(_ACQUIRE, staff.keys, staff.limit, staff.in_flight, _IN_FLIGHT_TTL))
        if wait:
            raise errors.RateLimited("too many scans that found no voucher", details={"retry_after": wait})
        wait = int(await self._run(_ACQUIRE, store.keys, store.limit, store.in_flight, _IN_FLIGHT_TTL))
        if wait:
            await self._run(_DONE, staff.keys, 0, WINDOW_SECONDS)
            raise errors.RateLimited(
                "too many scans at this store that found no voucher", details={"retry_after": wait}
            )
        return Attempt(store_id, staff_id)

    async def done(self, attempt: Attempt, actor: Actor, *, not_found: bool) -> None:
        """End the scan; if it found no voucher, count the failure, and audit the burst
        the first time a window reaches a limit."""
        for scope in self._scopes(attempt.store_id, attempt.staff_id):
            failures = int(await self._run(_DONE, scope.keys, int(not_found), WINDOW_SECONDS))
            if not not_found or failures != scope.limit:
                continue
            if not int(await self._run(_FIRST, [f"scan:{{{scope.tag}}}:audited"], WINDOW_SECONDS)):
                continue
            await audit.record(
                actor, "redemption.scan_burst", "store", attempt.store_id, None,
                {"staff_id": attempt.staff_id, "scope": scope.name, "failures": failures,
                 "window_seconds": WINDOW_SECONDS},
            )  # fmt: skip
