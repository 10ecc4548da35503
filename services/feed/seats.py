"""Live limits of the campaigns a feed answer shows, so that a campaign its page refuses
to join is shown not joinable (issue 14 item 2): the seats taken of the capped ones (a
full one: ``campaign_full``, services/journey/participation.py) — the index's
participant counts are a cached database read, minutes old — and whether the budget of
those with a budget cap is spent (``budget_exhausted``).

Read only for the cards written (a page or the home page's sections, a few dozen at
most), not for the whole ranking: one pipelined Redis round trip for all of them, and
grouped database queries for those Redis does not have (a seat set not loaded, after a
Redis loss or before their first join; a budget not loaded, before their first grab),
as the page falls back to the database.

The journey asks ``budgets_spent`` of the one campaign a page or a join is about, so
both sides judge a spent budget alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from models.campaigns import Campaign
from services.campaigns import CampaignSnapshot
from services.core import AnyRedis, SeatKeys, budget_key
from services.feed.index import participant_counts
from services.feed.scoring import Scored


class Live(NamedTuple):
    """What a feed answer reads live of the campaigns it shows."""

    #: Seats taken now (campaign id → count) of the running capped campaigns.
    taken: dict[int, int]
    #: The running campaigns whose budget is spent.
    budget_spent: frozenset[int]


async def live_limits(redis: AnyRedis, shown: Iterable[Scored]) -> Live:
    """Seats taken and spent budgets of the running campaigns among ``shown``; teasers
    and campaigns without a cap of either kind are left out (nothing to read)."""
    running = {s.id: s.snap for s in shown if s.running}
    capped = sorted(i for i, snap in running.items() if snap.participant_cap is not None)
    budgeted = sorted(i for i, snap in running.items() if snap.budget_limit is not None)
    if not capped and not budgeted:
        return Live({}, frozenset())
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in capped:
            keys = SeatKeys(campaign_id)
            pipe.exists(keys.loaded)
            pipe.scard(keys.members)
        for campaign_id in budgeted:
            pipe.get(budget_key(campaign_id))
        replies = await pipe.execute()
    taken: dict[int, int] = {}
    missing = []
    for k, campaign_id in enumerate(capped):
        loaded, count = replies[2 * k], replies[2 * k + 1]
        if loaded:
            taken[campaign_id] = int(count)
        else:
            missing.append(campaign_id)
    if missing:
        counted = await participant_counts(missing)
        taken.update({i: counted.get(i, 0) for i in missing})
    spent = await _spent(dict(zip(budgeted, replies[2 * len(capped) :], strict=True)))
    return Live(taken, spent)


async def budgets_spent(redis: AnyRedis, snaps: Iterable[CampaignSnapshot]) -> frozenset[int]:
    """The campaigns among ``snaps`` whose budget is spent (a budget cap, and nothing
    left of it in Redis — or, when Redis does not have it, spent ≥ limit in the
    database, from which the stock loads it)."""
    budgeted = sorted({s.id for s in snaps if s.budget_limit is not None})
    if not budgeted:
        return frozenset()
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in budgeted:
            pipe.get(budget_key(campaign_id))
        replies = await pipe.execute()
    return await _spent(dict(zip(budgeted, replies, strict=True)))


async def _spent(left: dict[int, bytes | str | None]) -> frozenset[int]:
    """The ids whose budget left (Redis replies, None: not loaded) is spent."""
    spent = {i for i, value in left.items() if value is not None and int(value) <= 0}
    missing = [i for i, value in left.items() if value is None]
    if missing:
        rows = await Campaign.filter(id__in=missing).values_list("id", "budget_limit", "budget_spent")
        spent |= {int(i) for i, limit, used in rows if limit is not None and used >= limit}
    return frozenset(spent)
