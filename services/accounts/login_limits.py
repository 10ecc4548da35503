"""Failed-login throttling in Redis, per (account, client address) and per client address.

Why not per account: a per-account lockout lets anyone lock an admin or staff member out
of their own account by typing five wrong passwords. The failures are therefore counted
per *(account, address)*: guessing from one address locks only that address out of that
account, and the owner, from anywhere else, still logs in. Guessing one password on many
accounts is caught per address (a multiple of the per-account limit, for shared NATs and
tills). A guesser spread over many addresses gets the limit per address: the Argon2 cost
and the back-off bound that, without handing them a way to lock the owner out.

Each lockout of the same (account, address) pair, or address, lasts twice as long as the
one before (exponential back-off): LOGIN_LOCKOUT_SECONDS first, then 2×, 4×, … up to a
day. The count of lockouts ("strikes") is forgotten a day after the last one. Only
failures count, so a user who types the right password is never locked out by their own
successes, and a success forgets the pair's failures and strikes.

An attempt is counted *before* its password is checked, atomically with the limit check
(``acquire``), and un-counted if it turns out not to be a failure (``record_success``,
``release``). Checking first and counting after the (slow, by design) hash would let any
number of concurrent guesses pass the check before the first failure is recorded.
Each scope's keys share one hash tag and are updated by one script, so this also runs on
Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core import AnyRedis, errors

#: One address may fail this many times more than one account (shared NATs, tills).
_ADDRESS_FACTOR = 4
#: The longest lockout, and how long lockouts are remembered for the back-off, seconds.
MAX_LOCKOUT_SECONDS = 86_400

# KEYS[1] failure counter, KEYS[2] lock, KEYS[3] strikes (lockouts so far), one hash tag.
# ARGV[1] counting window seconds, ARGV[2] the most attempts allowed, ARGV[3] the first
# lockout's seconds, ARGV[4] the longest lockout's seconds.
# Returns 0 if this attempt was counted, else the seconds until the lockout ends (and the
# refused attempt is not counted). The attempt over the limit starts the lockout: the
# counter is dropped (a fresh count after it) and the strikes double the next one.
_ACQUIRE = """
local locked = redis.call('TTL', KEYS[2])
if locked > 0 then return locked end
local n = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n <= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
local strikes = tonumber(redis.call('GET', KEYS[3]) or '0')
local seconds = tonumber(ARGV[3]) * 2 ^ math.min(strikes, 30)
if seconds > tonumber(ARGV[4]) then seconds = tonumber(ARGV[4]) end
seconds = math.max(1, math.floor(seconds))
redis.call('SET', KEYS[2], '1', 'EX', seconds)
redis.call('SET', KEYS[3], strikes + 1, 'EX', ARGV[4])
return seconds
"""

# KEYS[1] counter: take back one counted attempt (never below zero, never re-creating
# an expired key without its TTL).
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return n
"""


@dataclass(frozen=True)
class _Scope:
    """The keys of one throttled scope: a (realm, account, address) pair, or an address."""

    tag: str

    @property
    def keys(self) -> list[str]:
        return [f"login:{{{self.tag}}}:failures", f"login:{{{self.tag}}}:lock", f"login:{{{self.tag}}}:strikes"]

    @property
    def failures(self) -> str:
        return self.keys[0]


@dataclass(frozen=True)
class LoginLimiter:
    redis: AnyRedis
    max_failures: int
    lockout_seconds: int

    def _scopes(self, realm: str, username: str, address: str) -> tuple[_Scope, _Scope]:
        return _Scope(f"{realm}:pair:{username.lower()}:{address}"), _Scope(f"{realm}:ip:{address}")

    async def _acquire(self, scope: _Scope, limit: int) -> int:
        script = self.redis.register_script(_ACQUIRE)
        longest = max(MAX_LOCKOUT_SECONDS, self.lockout_seconds)
        return int(await script(keys=scope.keys, args=[self.lockout_seconds, limit, self.lockout_seconds, longest]))

    async def acquire(self, realm: str, username: str, address: str) -> None:
        """Count one attempt for this account from this address, and for the address, or
        raise TooManyAttempts (with retry_after) if either is locked. Follow with
        record_success or release unless the attempt failed on its credentials (then it
        stays counted)."""
        pair, ip = self._scopes(realm, username, address)
        pair_wait = await self._acquire(pair, self.max_failures)
        if pair_wait:
            raise errors.TooManyAttempts(details={"retry_after": pair_wait})
        ip_wait = await self._acquire(ip, self.max_failures * _ADDRESS_FACTOR)
        if ip_wait:
            await self._release(pair.failures)
            raise errors.TooManyAttempts(details={"retry_after": ip_wait})

    async def release(self, realm: str, username: str, address: str) -> None:
        """Un-count an acquired attempt that ended without a verdict (an error)."""
        for scope in self._scopes(realm, username, address):
            await self._release(scope.failures)

    async def record_success(self, realm: str, username: str, address: str) -> None:
        """A correct password forgets the pair's failures and strikes, and does not count
        for the address."""
        pair, ip = self._scopes(realm, username, address)
        failures, _lock, strikes = pair.keys
        await self.redis.delete(failures)
        await self.redis.delete(strikes)
        await self._release(ip.failures)

    async def _release(self, key: str) -> None:
        await self.redis.register_script(_RELEASE)(keys=[key])
