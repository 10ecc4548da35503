"""Failed-login throttling in Redis, per account and per client address.

Only failures count, so a user who types the right password is never locked out by
their own successes; a lockout ends by itself after LOGIN_LOCKOUT_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services import errors

#: One address may fail this many times more than one account (shared NATs, tills).
_ADDRESS_FACTOR = 4


@dataclass(frozen=True)
class LoginLimiter:
    redis: Redis
    max_failures: int
    lockout_seconds: int

    def _keys(self, realm: str, username: str, address: str) -> tuple[str, str]:
        return f"login-fail:{realm}:user:{username.lower()}", f"login-fail:{realm}:ip:{address}"

    async def check(self, realm: str, username: str, address: str) -> None:
        """Raise TooManyAttempts (with retry_after) if this account or address is locked."""
        user_key, ip_key = self._keys(realm, username, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(user_key).ttl(user_key).get(ip_key).ttl(ip_key)
            user_count, user_ttl, ip_count, ip_ttl = await pipe.execute()
        waits = []
        if user_count is not None and int(user_count) >= self.max_failures:
            waits.append(user_ttl)
        if ip_count is not None and int(ip_count) >= self.max_failures * _ADDRESS_FACTOR:
            waits.append(ip_ttl)
        if waits:
            retry_after = max(1, max(int(w) for w in waits))
            raise errors.TooManyAttempts(details={"retry_after": retry_after})

    async def record_failure(self, realm: str, username: str, address: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(realm, username, address):
                pipe.incr(key).expire(key, self.lockout_seconds, nx=True)
            await pipe.execute()

    async def record_success(self, realm: str, username: str, address: str) -> None:
        await self.redis.delete(self._keys(realm, username, address)[0])
