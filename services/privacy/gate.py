"""Access tokens of erased customers stop working.

Access tokens are verified without I/O (services/core/tokens.py), the coupon grab
included, so the erased customers are a set every process keeps in memory: an erasure
adds the id to a Redis sorted set (scored by the time of erasure) and to the erasing
process's own copy; the other processes read the set again at most ``refresh_seconds``
after a customer request found their copy stale. A request pays a clock read and a set
lookup; at most one Redis read per process and ``refresh_seconds``. Ids older than the
access-token lifetime (plus a margin) drop out of the set: every token issued before the
erasure has expired by then, and the erased customer has no refresh token left.
"""

from __future__ import annotations

import logging
import time

from services.core import AnyRedis, text

log = logging.getLogger("wxcampaign.privacy")

#: Customer id -> erased at (epoch seconds).
ERASED_KEY = "privacy:erased-customers"
#: Kept this long past the access-token lifetime (clock skew between processes).
MARGIN_SECONDS = 60


class ErasedCustomers:
    """This process's copy of the recently erased customers."""

    def __init__(self, token_ttl_seconds: int, refresh_seconds: float = 1.0) -> None:
        self.window = token_ttl_seconds + MARGIN_SECONDS
        self.refresh_seconds = refresh_seconds
        self.ids: frozenset[int] = frozenset()
        self._next = 0.0

    def blocks(self, customer_id: int) -> bool:
        return customer_id in self.ids

    def stale(self) -> bool:
        return time.monotonic() >= self._next

    async def refresh(self, redis: AnyRedis) -> None:
        """Read the set again. Only one caller at a time reads (the others keep the copy
        they have); a Redis failure keeps the copy too, and is retried a period later."""
        self._next = time.monotonic() + self.refresh_seconds
        try:
            raw = await redis.zrangebyscore(ERASED_KEY, time.time() - self.window, "+inf")
        except Exception:  # a customer request must not fail on this: the copy stays
            log.warning("could not read the erased customers; keeping the copy", exc_info=True)
            return
        self.ids = frozenset(int(text(member)) for member in raw)

    def add(self, customer_id: int) -> None:
        self.ids = self.ids | {customer_id}


async def mark_erased(redis: AnyRedis, customer_id: int, window_seconds: int) -> None:
    """Publish an erasure to every process (and forget those past the window)."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(ERASED_KEY, {str(customer_id): now})
        pipe.zremrangebyscore(ERASED_KEY, "-inf", now - window_seconds - MARGIN_SECONDS)
        await pipe.execute()
