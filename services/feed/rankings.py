"""A viewer's ranking, kept for a few seconds in the process: opening the mini program
asks for the home page's sections and the first feed page at once, and scrolling asks
for the next pages; all of them read one ranking, computed once.

A ranking is stamped with two Redis counters read in one command: the catalog version
(bumped when an admin changes a campaign) and the viewer's own version (bumped when
something the ranking reads of them changes: a join, a purchase or refund, the profile).
A stamp that moved, or an age past ``seconds``, means computing it again, so a customer
who has just joined sees it in their feed at once, in every process. Audience membership
and participant counts may lag by ``seconds``, as they already lag by the audience
sets' and the index's own lifetimes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from services.core import AnyRedis

#: One hash tag for the catalog version and every viewer's, so that both are read with
#: one MGET, also on Redis Cluster.
VERSION_TAG = "{journey}"
CATALOG_VERSION_KEY = f"{VERSION_TAG}:catalog-version"
#: A viewer's counter expires when idle: a ranking never outlives ``seconds`` (far
#: shorter), so a counter restarting from 0 cannot match a kept ranking.
VIEWER_VERSION_TTL = 86_400

T = TypeVar("T")


def viewer_version_key(customer_id: int) -> str:
    return f"{VERSION_TAG}:viewer:{customer_id}"


def profile_key(customer_id: int) -> str:
    """The customer's feed profile (services/feed/profile.py), under the versions' tag."""
    return f"{VERSION_TAG}:feed-profile:{customer_id}"


async def viewer_changed(redis: AnyRedis, customer_id: int) -> None:
    """Something a ranking reads of this customer changed: call after the change is
    committed (a ranking computed in between would be cached under the new stamp). The
    customer's feed profile goes too: its stamp no longer matches."""
    key = viewer_version_key(customer_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, VIEWER_VERSION_TTL)
        pipe.delete(profile_key(customer_id))
        await pipe.execute()


async def versions(redis: AnyRedis, customer_id: int) -> tuple[int, int, bytes | str | None]:
    """(catalog version, this viewer's version, their feed profile as stored or None),
    0 for a counter never bumped: one command."""
    catalog, viewer, profile = await redis.mget(
        CATALOG_VERSION_KEY, viewer_version_key(customer_id), profile_key(customer_id)
    )
    return int(catalog or 0), int(viewer or 0), profile


class RankingCache(Generic[T]):
    """Values by key, each valid for ``seconds`` under the stamp it was computed with,
    at most ``size`` of them (least recently used out first). One computation per key
    and stamp at a time: concurrent callers share it; a value ``keep`` refuses goes to
    them and no further. ``seconds`` 0 turns it off."""

    def __init__(self, seconds: float, size: int, keep: Callable[[T], bool] | None = None) -> None:
        self.seconds = seconds
        self.size = size
        self._keep = keep
        self.computed = 0  # computations started (read by tests and the bench)
        self._entries: OrderedDict[Hashable, tuple[float, Hashable, T]] = OrderedDict()
        self._flights: dict[tuple[Hashable, Hashable], asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, stamp: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        if self.seconds <= 0:
            self.computed += 1
            return await compute()
        found = self._entries.get(key)
        if found is not None and found[1] == stamp and time.monotonic() - found[0] < self.seconds:
            self._entries.move_to_end(key)
            return found[2]
        flight = self._flights.get((key, stamp))
        if flight is None:
            flight = asyncio.ensure_future(self._compute(key, stamp, compute))
            self._flights[(key, stamp)] = flight
            flight.add_done_callback(lambda done: self._landed(key, stamp, done))
        # Shielded: a caller that goes away (client closed) does not cancel the others'.
        return await asyncio.shield(flight)

    def _landed(self, key: Hashable, stamp: Hashable, flight: asyncio.Task[T]) -> None:
        self._flights.pop((key, stamp), None)
        if not flight.cancelled():
            flight.exception()  # retrieved: every waiter has had it raised already

    async def _compute(self, key: Hashable, stamp: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        self.computed += 1
        # Aged from the start: what it read is at least that old.
        started = time.monotonic()
        value = await compute()
        if self._keep is not None and not self._keep(value):
            return value
        self._entries[key] = (started, stamp, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    async def close(self) -> None:
        """Cancel computations in flight (call before closing Redis and the database)."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
