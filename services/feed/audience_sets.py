"""Audience membership for the feed: a Redis set per targeted campaign, rebuilt from its
audience rule every ``audience_ttl`` seconds, so that whether a viewer is in the audience
of every targeted campaign is one script call (feed_audience.lua, beside this module)
instead of one rule query each.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from redis.commands.core import AsyncScript

from services.audience import rules as audience
from services.campaigns import CampaignSnapshot
from services.core import AnyRedis, call_script

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
#: Missing audience sets one request builds before answering (one rule query each).
INLINE_AUDIENCE_BUILDS = 3
#: One hash tag for every feed audience key, unlike the per-campaign tags of stock: a
#: request checks all targeted campaigns in one script call, which Redis Cluster allows
#: only within one slot. The sets are a cache rebuilt from the rules.
AUDIENCE_TAG = "{feed-audience}"
_PREFIX = f"{AUDIENCE_TAG}:"
_FRESH = ":fresh"


@dataclass(frozen=True)
class AudienceKeys:
    campaign_id: int

    @property
    def members(self) -> str:
        return f"{_PREFIX}{self.campaign_id}"

    @property
    def fresh(self) -> str:
        # services/feed/feed_audience.lua builds both names from _PREFIX and _FRESH.
        return f"{_PREFIX}{self.campaign_id}{_FRESH}"

    @property
    def building(self) -> str:
        return f"{AUDIENCE_TAG}:{self.campaign_id}:building"

    @property
    def staging(self) -> str:
        return f"{AUDIENCE_TAG}:{self.campaign_id}:staging"


async def refresh_audience(redis: AnyRedis, snap: CampaignSnapshot, ttl: int) -> list[int] | None:
    """Rebuild a targeted campaign's audience set from its rule (one query), swapped in
    atomically; None when another process is already rebuilding it."""
    keys = AudienceKeys(snap.id)
    token = secrets.token_hex(8)
    if not await redis.set(keys.building, token, nx=True, px=60_000):
        return None
    try:
        ids = await audience.customer_ids_matching(snap.audience_rule)
        await redis.delete(keys.staging)
        for start in range(0, len(ids), 5000):
            await redis.sadd(keys.staging, *ids[start : start + 5000])
        if ids:
            await redis.rename(keys.staging, keys.members)
        else:
            await redis.delete(keys.members)
        await redis.set(keys.fresh, "1", ex=ttl)
        return ids
    finally:
        await redis.eval(_RELEASE, 1, keys.building, token)


async def set_member(redis: AnyRedis, campaign_id: int, customer_id: int, member: bool) -> None:
    """One customer joined or left a targeted campaign's audience (their tier changed):
    update its set now rather than at the next rebuild. A set never built (no fresh
    marker and no members) is left alone: the next request builds it from the rule, which
    reads the committed change; one built empty has only its marker (an empty set is no
    key in Redis), so the marker counts. Precondition: the change is committed."""
    keys = AudienceKeys(campaign_id)
    if not await redis.exists(keys.members, keys.fresh):
        return
    if member:
        await redis.sadd(keys.members, customer_id)
    else:
        await redis.srem(keys.members, customer_id)


def audience_ids(targeted: list[CampaignSnapshot]) -> str:
    """The script's list of campaigns: their ids, comma-separated (kept per index)."""
    return ",".join(str(snap.id) for snap in targeted)


async def audience_of(
    redis: AnyRedis, script: AsyncScript, customer_id: int, targeted: list[CampaignSnapshot], ttl: int,
    refresh_later: Callable[[CampaignSnapshot], None], ids: str | None = None,
) -> tuple[set[int], bool]:  # fmt: skip
    """The targeted campaigns whose audience holds this customer: one script call
    (``script`` is services/feed/feed_audience.lua registered on ``redis``; ``ids``:
    ``audience_ids(targeted)``, kept by the caller). A set past its ``ttl`` keeps
    answering while ``refresh_later`` rebuilds it; a set that is missing (never built,
    or dropped by an admin's change) is rebuilt before answering, up to
    INLINE_AUDIENCE_BUILDS of them (the others in the background). Also returns whether
    the answer is complete: False when a missing set was left to the background or was
    being built by another request (its campaign is left out this time)."""
    if not targeted:
        return set(), True
    if ids is None:
        ids = audience_ids(targeted)
    # One command for hundreds of campaigns, not three each: redis-py's cost is per
    # command. It answers only the campaigns that hold the customer or are not fresh.
    reply = await call_script(script, [AUDIENCE_TAG], [customer_id, _PREFIX, _FRESH, ids])
    found: set[int] = set()
    complete = True
    inline = 0
    for k in range(0, len(reply), 2):
        snap, flag = targeted[int(reply[k]) - 1], int(reply[k + 1])
        member = bool(flag & 1)
        if not flag & 4:
            if flag & 2:
                # Rebuilt inline, every set expiring together would stall one request
                # for minutes (one rule query each) and hold the database meanwhile.
                refresh_later(snap)
            elif inline >= INLINE_AUDIENCE_BUILDS:
                # Many missing at once (a start on an empty Redis): the rest are built
                # in the background rather than stalling this request for a minute.
                refresh_later(snap)
                complete = False
            else:
                inline += 1
                rebuilt = await refresh_audience(redis, snap, ttl)
                if rebuilt is None:
                    complete = False
                else:
                    member = customer_id in rebuilt
        if member:
            found.add(snap.id)
    return found, complete
