"""Failed-login throttling in Redis, per account and per client address.

Only failures count, so a user who types the right password is never locked out by
their own successes; a lockout ends by itself after LOGIN_LOCKOUT_SECONDS.

An attempt is counted *before* its password is checked, atomically with the limit check
(``acquire``), and un-counted if it turns out not to be a failure (``record_success``,
``release``). Checking first and counting after the (slow, by design) hash would let any
number of concurrent guesses pass the check before the first failure is recorded.
Each counter is one key updated by a one-key script, so this also runs on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core import AnyRedis, errors

#: One address may fail this many times more than one account (shared NATs, tills).
_ADDRESS_FACTOR = 4

# KEYS[1] counter; ARGV[1] lockout seconds, ARGV[2] the most attempts allowed.
# Returns 0 if this attempt was counted, else the seconds until the lockout ends (and
# the refused attempt is not counted).
_ACQUIRE = """
local n = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
return 0
"""

# KEYS[1] counter: take back one counted attempt (never below zero, never re-creating
# an expired key without its TTL).
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return n
"""


@dataclass(frozen=True)
class LoginLimiter:
    redis: AnyRedis
    max_failures: int
    lockout_seconds: int

    def _keys(self, realm: str, username: str, address: str) -> tuple[str, str]:
        return f"login-fail:{realm}:user:{username.lower()}", f"login-fail:{realm}:ip:{address}"

    async def acquire(self, realm: str, username: str, address: str) -> None:
        """Count one attempt for this account and address, or raise TooManyAttempts (with
        retry_after) if either is locked. Follow with record_success or release unless the
        attempt failed on its credentials (then it stays counted)."""
        user_key, ip_key = self._keys(realm, username, address)
        acquire = self.redis.register_script(_ACQUIRE)
        user_wait = int(await acquire(keys=[user_key], args=[self.lockout_seconds, self.max_failures]))
        if user_wait:
            raise errors.TooManyAttempts(details={"retry_after": user_wait})
        ip_limit = self.max_failures * _ADDRESS_FACTOR
        ip_wait = int(await acquire(keys=[ip_key], args=[self.lockout_seconds, ip_limit]))
        if ip_wait:
            await self._release(user_key)
            raise errors.TooManyAttempts(details={"retry_after": ip_wait})

    async def release(self, realm: str, username: str, address: str) -> None:
        """Un-count an acquired attempt that ended without a verdict (an error)."""
        for key in self._keys(realm, username, address):
            await self._release(key)

    async def record_success(self, realm: str, username: str, address: str) -> None:
        """A correct password resets the account's failures and does not count for the address."""
        user_key, ip_key = self._keys(realm, username, address)
        await self.redis.delete(user_key)
        await self._release(ip_key)

    async def _release(self, key: str) -> None:
        await self.redis.register_script(_RELEASE)(keys=[key])
