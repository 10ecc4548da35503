"""A catalog change reloads only the campaigns it names (services/feed/catalog_changes.py):
the updated index must hold exactly what a full build of the same moment holds, and a
process that cannot know what changed builds in full."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from models.campaigns import Campaign, Theme
from models.participations import Participation
from server.keys import FEED, JOURNEY
from services.feed import FeedIndex, build_index, catalog_changes
from tests.journey.fixtures import make_campaign, shoppers


def _content(index: FeedIndex) -> dict[int, tuple]:
    """What ranking reads of each campaign, by id (entries' order does not matter)."""
    return {
        e.id: (e.snap, e.targeted, e.scheduled, e.shown_from_us, e.starts_us, e.ends_us, e.open_stores, e.participants)
        for e in index.entries
    }


async def test_updates_hold_what_a_full_build_holds(client) -> None:
    rng = random.Random(11)
    now = datetime.now(UTC)
    journey = client.server.app[JOURNEY]
    feed = client.server.app[FEED]
    themes = [await Theme.create(name=f"theme {i}") for i in range(3)]
    campaigns = [await make_campaign(tags=[rng.choice(["tea", "coffee"])]) for _ in range(12)]
    people = await shoppers(client, 3)
    first = await feed.index(now)
    updates = 0
    for step in range(25):
        campaign = rng.choice(campaigns)
        change = rng.choice(["hide", "show", "retag", "pause", "resume", "end", "new", "theme", "join"])
        if change == "new":
            campaign = await make_campaign(tags=["new"], theme_id=rng.choice(themes).id)
            campaigns.append(campaign)
        elif change == "join":  # a count that moves with the change of the campaign
            await Participation.get_or_create(customer_id=rng.choice(people).id, campaign_id=campaign.id)
        else:
            fields = {
                "hide": {"visibility": "hidden"}, "show": {"visibility": "public"},
                "retag": {"tags": [f"t{step}"]}, "pause": {"status": "paused"}, "resume": {"status": "active"},
                "end": {"ends_at": now - timedelta(minutes=1)}, "theme": {"theme_id": rng.choice(themes).id},
            }[change]  # fmt: skip
            await Campaign.filter(id=campaign.id).update(**fields)
        await journey.campaign_changed(campaign.id)
        version = await feed.version()
        updated = await feed.index(now)
        assert updated.version == version
        full = await build_index(now, version)
        assert _content(updated) == _content(full), change
        assert updated.themes == full.themes
        # Reloaded, not built: the full build's clock carried over.
        assert updated.built_at == first.built_at
        updates += 1
    assert updates == 25


async def test_a_bump_naming_no_campaign_or_a_lost_record_means_a_full_build(client) -> None:
    now = datetime.now(UTC)
    journey = client.server.app[JOURNEY]
    feed, redis = client.server.app[FEED], journey.redis
    await make_campaign(tags=["tea"])
    first = await feed.index(now)

    added = await make_campaign(tags=["coffee"])
    await catalog_changes.bump(redis, [added.id])
    reloaded = await feed.index(now)
    assert reloaded.built_at == first.built_at and added.id in reloaded.position

    unnamed = await make_campaign(tags=["coffee"])
    await catalog_changes.bump(redis, None)  # any campaign may have changed
    rebuilt = await feed.index(now)
    assert rebuilt.built_at > first.built_at and unnamed.id in rebuilt.position

    lost = await make_campaign(tags=["coffee"])
    await catalog_changes.bump(redis, [lost.id])
    await redis.delete(catalog_changes.CATALOG_CHANGES_KEY)  # e.g. Redis lost the record of that bump
    await catalog_changes.bump(redis, [999_999])  # names another campaign only
    assert await catalog_changes.changed_between(redis, rebuilt.version, rebuilt.version + 2) is None
    again = await feed.index(now)
    assert again.built_at > rebuilt.built_at and lost.id in again.position


async def test_the_record_is_bounded(client) -> None:
    redis = client.server.app[JOURNEY].redis
    start = await catalog_changes.bump(redis, [1])
    for i in range(catalog_changes.KEPT + 5):
        last = await catalog_changes.bump(redis, [i + 2])
    assert await redis.zcard(catalog_changes.CATALOG_CHANGES_KEY) == catalog_changes.KEPT
    assert await catalog_changes.changed_between(redis, start, last) is None  # the oldest were dropped
    assert await catalog_changes.changed_between(redis, last - 3, last) == {
        catalog_changes.KEPT + 4, catalog_changes.KEPT + 5, catalog_changes.KEPT + 6
    }  # fmt: skip


async def test_a_build_reads_the_campaigns_a_step_at_a_time(client, monkeypatch) -> None:
    """A full build turns at most SHOWN_STEP campaigns into snapshots per step (the event
    loop serves requests between steps), and holds what one step would."""
    from services.feed import index as feed_index

    now = datetime.now(UTC)
    made = [await make_campaign(tags=["tea"]) for _ in range(20)]
    await make_campaign(tags=["tea"], visibility="hidden")  # never shown
    whole = await build_index(now, 1)
    assert [e.id for e in whole.entries] == [c.id for c in made]
    steps: list[int] = []
    load = feed_index.load_snapshots

    async def counted(campaigns: list[Campaign]) -> list:
        steps.append(len(campaigns))
        return await load(campaigns)

    monkeypatch.setattr(feed_index, "SHOWN_STEP", 7)
    monkeypatch.setattr(feed_index, "load_snapshots", counted)
    stepped = await build_index(now, 1)
    assert steps == [7, 7, 6]
    assert _content(stepped) == _content(whole) and [e.id for e in stepped.entries] == [c.id for c in made]
