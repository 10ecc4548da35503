"""Access token shared by all server processes through Redis.

Only one process at a time may call ``stable_token``: besides saving calls,
force refreshes are rationed by WeChat (20 a day, 30 s apart), so a burst of
40001s must turn into a single refresh. A ``SET NX PX`` lock elects the
fetcher; the others poll the cache for a bounded time and only then fetch
themselves (the holder may have died).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

# Refresh before WeChat rotates the token (it does so 5 minutes before expiry).
SAFETY_MARGIN_S = 300
MIN_TTL_S = 60
POLL_INTERVAL_S = 0.05

# Delete the lock only if we still own it; it may have expired and been
# taken by another process meanwhile.
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

Fetcher = Callable[[bool], Awaitable[tuple[str, int]]]
"""``fetch(force_refresh) -> (access_token, expires_in)``."""


def cache_ttl(expires_in: int) -> int:
    """Seconds to keep a token that WeChat says lives ``expires_in`` seconds."""
    return max(expires_in - SAFETY_MARGIN_S, MIN_TTL_S)


def _text(value: bytes | str | None) -> str | None:
    # Works whether or not the caller's client was built with decode_responses.
    if isinstance(value, bytes):
        return value.decode()
    return value


class AccessTokenCache:
    """Redis-backed, cross-process single-flight cache of one app's access token.

    Preconditions: ``redis`` is shared by every process of the app;
    ``lock_ttl_s`` exceeds the longest possible ``fetch``; ``fetch`` stores
    nothing itself.
    """

    def __init__(
        self,
        *,
        redis: aioredis.Redis | aioredis.RedisCluster,
        key: str,
        lock_key: str,
        fetch: Fetcher,
        lock_ttl_s: float,
        wait_s: float,
    ) -> None:
        self._redis = redis
        self._key = key
        self._lock_key = lock_key
        self._fetch = fetch
        self._lock_ttl_ms = max(int(lock_ttl_s * 1000), 1)
        self._wait_s = wait_s
        self._release = redis.register_script(_RELEASE_LUA)
        # Tasks of this process queue here instead of all polling Redis.
        self._local = asyncio.Lock()

    async def get(self) -> str:
        """Return the cached token, fetching one if there is none."""
        cached = await self._cached()
        if cached is not None:
            return cached
        return await self._obtain(force=False, stale=None)

    async def refresh(self, stale: str | None) -> str:
        """Return a token other than ``stale``, force-refreshing if nobody has yet.

        ``stale`` is the token WeChat just rejected (or ``None``); if another
        task or process already replaced it, that replacement is returned
        without calling WeChat.
        """
        return await self._obtain(force=True, stale=stale)

    async def current(self) -> str | None:
        """Return the cached token without fetching (``None`` if absent)."""
        return await self._cached()

    async def _cached(self) -> str | None:
        return _text(await self._redis.get(self._key))

    @staticmethod
    def _usable(cached: str | None, force: bool, stale: str | None) -> bool:
        return cached is not None and (not force or cached != stale)

    async def _obtain(self, *, force: bool, stale: str | None) -> str:
        async with self._local:
            deadline = time.monotonic() + self._wait_s
            while True:
                cached = await self._cached()
                if self._usable(cached, force, stale):
                    assert cached is not None
                    return cached
                owner = secrets.token_hex(16)
                if await self._redis.set(self._lock_key, owner, nx=True, px=self._lock_ttl_ms):
                    try:
                        # Someone may have stored a token between our GET and SET NX.
                        cached = await self._cached()
                        if self._usable(cached, force, stale):
                            assert cached is not None
                            return cached
                        return await self._fetch_and_store(force)
                    finally:
                        await self._release(keys=[self._lock_key], args=[owner])
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL_S)
            # The lock holder is stuck or gone: better a duplicate call than none.
            return await self._fetch_and_store(force)

    async def _fetch_and_store(self, force: bool) -> str:
        token, expires_in = await self._fetch(force)
        await self._redis.set(self._key, token, ex=cache_ttl(expires_in))
        return token
