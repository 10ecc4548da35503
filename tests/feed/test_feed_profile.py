"""A customer's feed profile (services/feed/profile.py): a return look is ranked from it
without the database; every event that changes what a ranking reads of the customer,
and every catalog change, is seen by the very next look all the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tortoise import connections

from models.customers import Customer
from server.keys import JOURNEY, REDIS
from tests.journey.fixtures import make_campaign, shoppers


def _profile_key(customer_id: int) -> str:
    return f"{{journey}}:feed-profile:{customer_id}"


async def _feed(client: Any, who: Any) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/feed?limit=50", headers={**who.headers, "Accept-Language": "en"})
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["items"])


@asynccontextmanager
async def _counting_queries() -> AsyncIterator[Callable[[], int]]:
    """Counts the statements sent to the database meanwhile (as
    test_a_feed_request_costs_the_same_queries_for_3_or_30_campaigns does)."""
    cls = type(connections.get("default"))
    original, original_dict = cls.execute_query, cls.execute_query_dict
    counted = {"n": 0}

    async def execute_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return await original(self, *args, **kwargs)

    async def execute_query_dict(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return await original_dict(self, *args, **kwargs)

    cls.execute_query, cls.execute_query_dict = execute_query, execute_query_dict  # type: ignore[method-assign]
    try:
        yield lambda: counted["n"]
    finally:
        cls.execute_query, cls.execute_query_dict = original, original_dict  # type: ignore[method-assign]


@pytest.mark.both_redis
async def test_a_return_look_is_ranked_from_the_profile_without_the_database(client_with: Any) -> None:
    # No ranking cache: every look computes the ranking, as a look after it aged out does.
    client = await client_with(feed_ranking_seconds=0)
    coffee = await make_campaign(tags=["coffee"])
    gold = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"}, tags=["vip"])
    await make_campaign(tags=["tea"])
    [me] = await shoppers(client, 1, interest_tags=["coffee"], membership_tier="gold")
    first = await _feed(client, me)  # reads the facts and the audience sets, writes the profile
    assert {i["id"] for i in first} >= {coffee.id, gold.id}
    assert await client.server.app[REDIS].exists(_profile_key(me.id))
    async with _counting_queries() as queries:
        again = await _feed(client, me)
    assert queries() == 0
    assert [(i["id"], i["score"], i["reasons"]) for i in again] == [(i["id"], i["score"], i["reasons"]) for i in first]


async def test_the_events_that_change_a_ranking_drop_the_profile(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0)
    coffee = await make_campaign(tags=["coffee"])
    tea = await make_campaign(tags=["tea"])
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    assert (await _feed(client, me))[0]["id"] == coffee.id
    # A profile change (the customer's own route): the next look ranks the new interests.
    resp = await client.patch("/api/v1/me", json={"interest_tags": ["tea"]}, headers=me.headers)
    assert resp.status == 200, await resp.text()
    assert (await _feed(client, me))[0]["id"] == tea.id
    # A join: "you joined" at once.
    assert (await client.post(f"/api/v1/campaigns/{tea.id}/join", headers=me.headers)).status == 201
    item = next(i for i in await _feed(client, me) if i["id"] == tea.id)
    assert item["joined"] is True and item["joinable"] is False


async def test_a_catalog_change_asks_the_audiences_again(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0)
    await make_campaign(tags=["coffee"])
    [me] = await shoppers(client, 1, membership_tier="gold")
    await _feed(client, me)  # the profile: no targeted campaign yet
    gold = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    await client.server.app[JOURNEY].campaign_changed(gold.id)
    assert gold.id in {i["id"] for i in await _feed(client, me)}


async def test_facts_older_than_the_profile_life_are_read_again(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0, feed_profile_seconds=1)
    coffee = await make_campaign(tags=["coffee"])
    tea = await make_campaign(tags=["tea"])
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    assert (await _feed(client, me))[0]["id"] == coffee.id
    # Behind the feed's back (no event): the profile answers until its life is over.
    await Customer.filter(id=me.id).update(interest_tags=["tea"])
    assert (await _feed(client, me))[0]["id"] == coffee.id
    await asyncio.sleep(1.1)
    assert (await _feed(client, me))[0]["id"] == tea.id


async def test_a_profile_that_does_not_parse_is_computed_again(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0)
    coffee = await make_campaign(tags=["coffee"])
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    redis = client.server.app[REDIS]
    for stored in (b"not json", b'{"layout": 999}', b'{"layout": 1, "tier": "gold"}', b"[]"):
        await redis.set(_profile_key(me.id), stored)
        items = await _feed(client, me)
        assert items[0]["id"] == coffee.id and items[0]["reasons"][0]["code"] == "interest"
        assert await redis.get(_profile_key(me.id)) != stored  # written again


async def test_profile_seconds_zero_turns_it_off(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0, feed_profile_seconds=0)
    await make_campaign(tags=["coffee"])
    [me] = await shoppers(client, 1, interest_tags=["coffee"])
    await _feed(client, me)
    assert not await client.server.app[REDIS].exists(_profile_key(me.id))


async def test_memberships_are_kept_across_changes_to_untargeted_campaigns_only(client_with: Any) -> None:
    client = await client_with(feed_ranking_seconds=0)
    plain = await make_campaign(tags=["coffee"])
    gold = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    [me] = await shoppers(client, 1, membership_tier="gold")
    journey, redis = client.server.app[JOURNEY], client.server.app[REDIS]

    async def stored() -> dict[str, Any]:
        raw = await redis.get(_profile_key(me.id))
        assert raw is not None
        return dict(json.loads(raw))

    await _feed(client, me)
    first = await stored()
    # A change to a campaign nobody is targeted by (a teaser starting, an edit): the
    # memberships read before still answer, and the profile is not written again.
    await journey.campaign_changed(plain.id)
    assert gold.id in {i["id"] for i in await _feed(client, me)}
    assert await stored() == first
    # A change to the targeted one: the audience sets are asked again.
    await journey.campaign_changed(gold.id)
    assert gold.id in {i["id"] for i in await _feed(client, me)}
    again = await stored()
    assert again["catalog"] > first["catalog"] and again["checked_at"] > first["checked_at"]
