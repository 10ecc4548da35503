"""The feed's per-process runtime (``Feed``): the index cache, the audience sets'
background rebuilds, the viewers' cached rankings and the policy, and the one call a
request makes for a viewer's ranking (``ranking_for``).

A ranking then costs one Redis command for the versions and the customer's feed profile
(services/feed/profile.py); when the profile is not current, one SQL statement about the
customer (services/feed/viewer.py) and one script call (services/feed/audience_sets.py);
then a few dozen vector operations (services/feed/scoring.py), whatever the number of
campaigns. It is kept for the customer's next requests (services/feed/rankings.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.campaigns import CampaignSnapshot
from services.core import AnyRedis, errors
from services.feed import catalog_changes, profile
from services.feed.audience_sets import audience_ids, audience_of, refresh_audience
from services.feed.index import FeedIndex, build_index, participant_counts, theme_names, update_index
from services.feed.policy import FeedPolicy
from services.feed.rankings import RankingCache, profile_key, versions
from services.feed.scoring import Ranking, score_rows
from services.feed.viewer import Facts, facts_of, viewer, viewer_of

log = logging.getLogger("wxcampaign.feed")


def _log_failure(what: str) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed", what, exc_info=task.exception())

    return done


class Feed:
    """Per-process feed runtime: the index cache, the viewers' rankings and the policy.

    One index build at a time (single flight). An index past ``cache_seconds`` keeps
    serving while the next one builds in the background: with a thousand campaigns a
    build takes a while, and every request in flight would otherwise wait for it. An
    index of an older catalog version is never served: an admin's change shows at once.
    """

    def __init__(self, redis: AnyRedis, policy: FeedPolicy | None = None) -> None:
        self.redis = redis
        self.policy = policy or FeedPolicy()
        self._index: FeedIndex | None = None
        self._building: asyncio.Task[FeedIndex] | None = None
        # Audience sets to rebuild in the background, in order, one at a time: a start on
        # an empty Redis queues every targeted campaign, and as many rule queries at once
        # would hold every database connection the requests need.
        self._to_refresh: dict[int, CampaignSnapshot] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._audience = redis.register_script((Path(__file__).parent / "feed_audience.lua").read_text())
        self.rankings: RankingCache[Ranking] = RankingCache(
            self.policy.ranking_seconds, self.policy.ranking_entries, keep=lambda r: r.complete
        )

    async def version(self) -> int:
        return await catalog_changes.catalog_version(self.redis)

    async def index(self, now: datetime, version: int | None = None) -> FeedIndex:
        """The index of catalog ``version`` (read from Redis when not given), or of a
        later one."""
        if version is None:
            version = await self.version()
        current = self._index
        if current is not None and current.version >= version:
            if time.monotonic() - current.built_at >= self.policy.cache_seconds:
                self._build(current.version)
            return current
        while True:
            built = await asyncio.shield(self._build(version))
            if built.version >= version:
                return built
            # A build of an older version was running: wait for ours.

    def _build(self, version: int) -> asyncio.Task[FeedIndex]:
        task = self._building
        if task is None:
            task = asyncio.ensure_future(self._load(version))
            # A request waiting for this build gets its failure; a background one is logged
            # (the previous index keeps answering, and the next request tries again).
            task.add_done_callback(_log_failure("feed index build"))
            self._building = task
        return task

    async def _load(self, version: int) -> FeedIndex:
        try:
            now = datetime.now(UTC)
            current = self._index
            changed = None
            if current is not None and current.version < version:
                # A few versions behind: reload only what they changed, when that is known.
                changed = await catalog_changes.changed_between(self.redis, current.version, version)
            if current is not None and changed is not None:
                built = await update_index(current, changed, now, version)
            else:
                built = await build_index(now, version, current)
            self._index = built
            return built
        finally:
            self._building = None

    def forget(self) -> None:
        self._index = None
        self.rankings.clear()

    def _refresh_later(self, snap: CampaignSnapshot) -> None:
        """Queue an audience set's rebuild in the background (once, however often asked)."""
        self._to_refresh.setdefault(snap.id, snap)
        if self._refresher is None:
            self._refresher = asyncio.ensure_future(self._refresh_queued())

    async def _refresh_queued(self) -> None:
        try:
            while self._to_refresh:
                campaign_id = next(iter(self._to_refresh))
                try:
                    await refresh_audience(self.redis, self._to_refresh[campaign_id], self.policy.audience_ttl)
                except Exception:  # one bad rule must not stop the others; asked again later
                    log.warning("feed audience rebuild of campaign %d failed", campaign_id, exc_info=True)
                finally:
                    self._to_refresh.pop(campaign_id, None)
        finally:
            self._refresher = None

    async def close(self) -> None:
        """Stop background builds (call before closing Redis and the database)."""
        tasks = [*([self._refresher] if self._refresher else []), *([self._building] if self._building else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.rankings.close()

    async def ranking_for(
        self, customer_id: int, language: str, now: datetime, *, store_id: int | None, lat: float | None,
        lng: float | None,
    ) -> Ranking:  # fmt: skip
        """This customer's ranking, computed at most once per ``ranking_seconds`` while
        neither the catalog nor the customer changed (see services/feed/rankings.py),
        from their feed profile when it is current (services/feed/profile.py).
        A ``store_id`` must name an open store."""
        catalog, mine, stored = await versions(self.redis, customer_id)
        index = await self.index(now, catalog)
        if store_id is not None and store_id not in index.stores:
            raise errors.UnknownStore(f"no open store with id {store_id}", details={"store_ids": [store_id]})

        async def compute() -> Ranking:
            facts, members, complete = await self._profiled(customer_id, (catalog, mine), stored, index, now)
            who = viewer_of(customer_id, facts, language, store_id=store_id, lat=lat, lng=lng)
            ranking = Ranking(score_rows(index, who, set(members), self.policy, now), index, who, self.policy, now)
            ranking.complete = complete
            return ranking

        return await self.rankings.get((customer_id, language, store_id, lat, lng), (catalog, mine), compute)

    async def _profiled(
        self, customer_id: int, stamp: tuple[int, int], stored: bytes | str | None, index: FeedIndex, now: datetime
    ) -> tuple[Facts, frozenset[int], bool]:
        """The customer's facts and audience memberships, from their feed profile where
        it is current (``stored``: as read with ``stamp``, the catalog's version and the
        customer's), else read afresh and the profile written again; and whether the
        memberships are complete (a profile is written only then)."""
        policy, clock = self.policy, time.time()
        catalog, mine = stamp
        found = profile.load(stored) if policy.profile_seconds > 0 else None
        if found is not None and (found.viewer_version != mine or clock - found.facts_at >= policy.profile_seconds):
            found = None
        if found is not None:
            facts, facts_at = found.facts, found.facts_at
        else:
            facts, facts_at = await facts_of(customer_id, now), clock
        # Never kept past the audience sets' own life: with a short FEED_AUDIENCE_TTL, a change
        # behind the feed's back shows as soon as a set's rebuild does.
        reuse = min(policy.membership_seconds, policy.audience_ttl)
        members = None if found is None else profile.members_if_current(found, index, clock, reuse)
        if members is not None and found is not None:
            return facts, members, True
        checked_at = time.time()
        fresh, complete = await self._members(customer_id, index)
        if complete and policy.profile_seconds > 0:
            written = profile.Profile(
                viewer_version=mine, facts=facts, facts_at=facts_at, catalog_version=catalog, checked_at=checked_at,
                members=frozenset(fresh),
            )  # fmt: skip
            await self.redis.set(profile_key(customer_id), profile.dump(written), ex=int(policy.profile_seconds) + 1)
        return facts, frozenset(fresh), complete

    async def _members(self, customer_id: int, index: FeedIndex) -> tuple[set[int], bool]:
        """The targeted campaigns of the index whose audience holds the customer, read
        from the audience sets (services/feed/audience_sets.py), and whether complete."""
        ids = index.memo.get("audience-ids")
        if ids is None:
            ids = index.memo["audience-ids"] = audience_ids(index.targeted)
        return await audience_of(
            self.redis, self._audience, customer_id, index.targeted, self.policy.audience_ttl, self._refresh_later,
            ids,
        )  # fmt: skip

    async def preview(
        self, snap: CampaignSnapshot, customer_id: int, language: str, now: datetime, *, member: bool
    ) -> Ranking:
        """How the feed would rank ``snap`` for this customer now, whatever its state (the
        admin preview: a draft included). Precondition: ``snap`` is as customers would see
        it (status and visibility as published). It is scored alone in an index with the
        live index's stores, theme names and participant counts (so its popularity is
        measured against the others'), without a store or location; ``member``: whether
        the customer is in its audience, when targeted. Empty when the feed would not
        show it now (ended, or targeted at others)."""
        live = await self.index(now)
        themes = dict(live.themes)
        if snap.theme_id is not None and snap.theme_id not in themes:
            themes.update(await theme_names({snap.theme_id}))
        participants = {**live.participants, **await participant_counts([snap.id])}
        index = FeedIndex(time.monotonic(), live.version, [snap], participants, live.stores, themes)
        who = await viewer(customer_id, language, now, store_id=None, lat=None, lng=None)
        members = {snap.id} if member else set()
        return Ranking(score_rows(index, who, members, self.policy, now), index, who, self.policy, now)
