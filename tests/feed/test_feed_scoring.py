"""The feed's fast path: ``services.feed.score`` orders every candidate without writing
reasons, ``rank_one`` writes them for the items shown. Both must agree exactly with the
straightforward ranking (every campaign explained, then sorted), for any viewer; and an
expired index keeps serving while the next one builds."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta

from models.campaigns import Campaign
from models.customers import Customer
from server.keys import JOURNEY
from services.feed import FeedIndex, FeedPolicy, Ranked, Viewer, distance_km, rank_one, score
from tests.feed.fixtures import CATEGORIES, TAGS, TIERS, random_snapshot
from tests.journey.fixtures import make_campaign, shoppers


def _reference(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Ranked]:
    """The ranking as first written: explain every campaign, then sort by the explained score."""
    where = who.location
    if where is None and who.store_id is not None:
        where = index.stores.get(who.store_id)
    out = []
    for snap in index.campaigns:
        phase = snap.phase(now)
        if phase not in ("teaser", "running"):
            continue
        if snap.targeted and snap.id not in members:
            continue
        if who.store_id is not None and snap.store_ids is not None and who.store_id not in snap.store_ids:
            continue
        distance = None
        if where is not None:
            ids = index.stores if snap.store_ids is None else snap.store_ids
            found = [distance_km(*where, *index.stores[s]) for s in ids if s in index.stores]
            distance = min(found) if found else None
        out.append(rank_one(snap, phase, index, who, policy, now, snap.targeted, distance))  # type: ignore[arg-type]
    out.sort(key=lambda r: (-r.score, r.snap.ends_at, r.snap.id))
    return out


def test_fast_scores_and_order_match_the_explained_ranking_for_any_viewer() -> None:
    rng = random.Random(20261122)
    now = datetime.now(UTC)
    stores = {i: (31 + rng.uniform(-0.3, 0.3), 121 + rng.uniform(-0.3, 0.3)) for i in range(1, 13)}
    # Store 99 is closed (not in the index): campaigns may still list it.
    snaps = [random_snapshot(i, rng, now, [*stores, 99]) for i in range(1, 401)]
    # Boundaries to the microsecond: starting, ending and shown from now, ending exactly
    # at the edge of the "ending soon" window of each policy below.
    edges = [
        {"status": "active", "starts_at": now}, {"status": "active", "ends_at": now},
        {"status": "scheduled", "visible_from": now}, {"status": "active", "ends_at": now + timedelta(days=3)},
        {"status": "active", "ends_at": now + timedelta(days=10)},
    ]  # fmt: skip
    for k, change in enumerate(edges):
        base = snaps[k]
        change = {"visible_from": None, "starts_at": min(base.starts_at, now), **change}
        snaps[k] = dataclasses.replace(base, visibility="public", audience_rule=None, **change)
    participants = {s.id: int(rng.expovariate(1 / 300)) for s in snaps if rng.random() < 0.8}
    index = FeedIndex(0.0, 1, snaps, participants, stores, {})
    targeted = [s.id for s in snaps if s.targeted]
    odd = FeedPolicy(
        audience=1.2345, interest=0.777, behaviour=2.5001, store=0.3333, distance=3.1, ending=1.999,
        popularity=0.61, joined=-0.4444, near_km=40.0, ending_soon_days=10,
    )  # fmt: skip
    policies = [FeedPolicy(), odd, FeedPolicy(popularity=0.0, distance=0.0, joined=0.0)]
    compared = 0
    for n in range(300):
        where = (31 + rng.uniform(-0.5, 0.5), 121 + rng.uniform(-0.5, 0.5)) if rng.random() < 0.5 else None
        interests = frozenset(rng.sample([*TAGS, "unknown"], rng.randint(0, 4)))
        bought = frozenset(rng.sample(CATEGORIES, rng.randint(0, 3)))
        who = Viewer(
            customer_id=n, tier=rng.choice(TIERS), interests=interests, bought=bought,
            preferred_store_id=rng.choice([None, 99, *stores]), joined=frozenset(rng.sample(range(1, 401), 30)),
            location=where,
            store_id=rng.choice([None, None, None, *stores]), language=rng.choice(["en", "zh-CN"]),
        )  # fmt: skip
        members = set(rng.sample(targeted, len(targeted) // 2))
        policy = policies[n % len(policies)]
        fast = score(index, who, members, policy, now)
        slow = _reference(index, who, members, policy, now)
        assert [s.snap.id for s in fast] == [r.snap.id for r in slow]
        assert [s.score for s in fast] == [r.score for r in slow]
        assert [(s.phase, s.distance_km) for s in fast] == [(r.phase, r.distance_km) for r in slow]
        compared += len(fast)
    # The world is varied enough that the comparison covers teasers, ties and reasons.
    assert compared > 300 * 100


async def test_an_expired_index_serves_while_the_next_one_builds(client_with) -> None:
    # No ranking cache: the test is about the index's lifetime.
    client = await client_with(feed_cache_seconds=0.2, feed_ranking_seconds=0)
    first = await make_campaign(tags=["coffee"])
    [me] = await shoppers(client, 1)

    async def ids() -> list[int]:
        resp = await client.get("/api/v1/feed?limit=50", headers=me.headers)
        assert resp.status == 200, await resp.text()
        return [i["id"] for i in (await resp.json())["items"]]

    assert await ids() == [first.id]
    # Written behind the feed's back (no admin change): only the next build sees it.
    second = await make_campaign(tags=["tea"])
    await asyncio.sleep(0.3)
    assert await ids() == [first.id]  # expired, served while rebuilding
    for _ in range(100):
        if second.id in await ids():
            break
        await asyncio.sleep(0.05)
    assert sorted(await ids()) == sorted([first.id, second.id])


async def test_an_admin_change_is_never_answered_from_an_older_index(client) -> None:
    first = await make_campaign(tags=["coffee"])
    [me] = await shoppers(client, 1)
    journey = client.server.app[JOURNEY]

    async def ids() -> set[int]:
        resp = await client.get("/api/v1/feed?limit=50", headers=me.headers)
        assert resp.status == 200, await resp.text()
        return {i["id"] for i in (await resp.json())["items"]}

    assert await ids() == {first.id}
    for n in range(5):  # each change is seen by the very next request, however fresh the index
        await Campaign.filter(id=first.id).update(tags=[f"t{n}"])
        added = await make_campaign(tags=["tea"])
        await journey.campaign_changed(added.id)
        assert added.id in await ids()


async def test_an_expired_audience_answers_while_it_is_rebuilt_in_the_background(client_with) -> None:
    client = await client_with(feed_audience_ttl=1, feed_ranking_seconds=0)
    gold = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    [member] = await shoppers(client, 1, prefix="o_gold", membership_tier="gold")
    [me] = await shoppers(client, 1, prefix="o_plain")

    async def ids(who) -> set[int]:
        resp = await client.get("/api/v1/feed", headers=who.headers)
        assert resp.status == 200, await resp.text()
        return {i["id"] for i in (await resp.json())["items"]}

    assert await ids(member) == {gold.id}  # builds the set (it did not exist): inline
    assert await ids(me) == set()
    await Customer.filter(id=me.id).update(membership_tier="gold")  # behind the feed's back
    await asyncio.sleep(1.2)
    assert await ids(me) == set()  # the expired set answered; its rebuild has started
    for _ in range(100):
        if await ids(me) == {gold.id}:
            break
        await asyncio.sleep(0.05)
    assert await ids(me) == {gold.id}
