"""What Redis holds about one customer, found by key name, and its removal on erasure.

Keys named after the customer (deleted): the grab's idempotency records, rate counters
and recent claims of every campaign (services/stock/keys.py), lucky draws' idempotency
records and day counters (services/forms/draw.py: an erased customer draws no more), the
exclusivity markers (services/stock/exclusive.py), the feed's viewer version
(services/feed/rankings.py) and feed profile (services/feed/profile.py: their tier,
interests and categories bought).
Sets listing the customer (member removed): the audience sets of the feed and of the
grab. Kept, because they mirror rows kept in the database under the anonymous id: the
coupons' holder counts (per-user limits), capped campaigns' seat sets, claims streams.
The tracking HyperLogLogs (reach, clickers) hash the id in with everybody's and cannot
give it back or drop it: they go with the tracking retention (services/privacy/retention.py).

A full SCAN of the keyspace: erasures are rare, and a pattern per key family would scan
it once per family anyway.
"""

from __future__ import annotations

import re

from services.core import AnyRedis, text

#: Keys per SCAN call.
SCAN_COUNT = 1000


def _patterns(customer_id: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    named = re.compile(
        rf"^(?:\{{cmp:\d+\}}:(?:idem|rate|recent|draw:idem|draw:day):{customer_id}(?::.*)?"
        rf"|\{{xcl:{customer_id}\}}"
        rf"|\{{journey\}}:(?:viewer|feed-profile):{customer_id})$"
    )
    listing = re.compile(r"^(?:\{feed-audience\}:\d+|\{cmp:\d+\}:audience)$")
    return named, listing


async def erase(redis: AnyRedis, customer_id: int) -> int:
    """Delete the customer's keys and drop them from audience sets; returns keys deleted."""
    named, listing = _patterns(customer_id)
    doomed: list[str] = []
    sets: list[str] = []
    async for raw in redis.scan_iter(count=SCAN_COUNT):
        key = text(raw)
        if named.match(key):
            doomed.append(key)
        elif listing.match(key):
            sets.append(key)
    # One key per command: on Redis Cluster the keys live in different slots.
    async with redis.pipeline(transaction=False) as pipe:
        for key in doomed:
            pipe.delete(key)
        for key in sets:
            pipe.srem(key, str(customer_id))
        await pipe.execute()
    return len(doomed)
