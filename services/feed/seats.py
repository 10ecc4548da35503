"""Live seat counts of the capped campaigns a feed answer shows, so that a full campaign
is shown not joinable, as its page says (``campaign_full``, services/journey/
participation.py) — the index's participant counts are a cached database read, minutes
old (issue 14 item 2).

Read only for the cards written (a page or the home page's sections, a few dozen at
most), not for the whole ranking: one pipelined Redis round trip for all of them, and
one grouped query for those whose seat set is not loaded (after a Redis loss, before
their first join), as the page's ``seats_taken`` falls back to the database.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.core import AnyRedis, SeatKeys
from services.feed.index import participant_counts
from services.feed.scoring import Scored


async def seats_taken(redis: AnyRedis, shown: Iterable[Scored]) -> dict[int, int]:
    """Seats taken now (campaign id → count) of the running capped campaigns among
    ``shown``; teasers and uncapped campaigns are left out (nothing to read)."""
    ids = sorted({s.id for s in shown if s.running and s.snap.participant_cap is not None})
    if not ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in ids:
            keys = SeatKeys(campaign_id)
            pipe.exists(keys.loaded)
            pipe.scard(keys.members)
        replies = await pipe.execute()
    taken: dict[int, int] = {}
    missing = []
    for k, campaign_id in enumerate(ids):
        loaded, count = replies[2 * k], replies[2 * k + 1]
        if loaded:
            taken[campaign_id] = int(count)
        else:
            missing.append(campaign_id)
    if missing:
        counted = await participant_counts(missing)
        taken.update({i: counted.get(i, 0) for i in missing})
    return taken
