"""The catalog version, and which campaigns each version changed: what a process reads
to know its cached campaign data and feed index are stale, and the calls that announce a
change (``catalog_changed``, ``campaign_changed``).

Every process keeps a feed index of the catalog version it read (services/feed/index.py), and
a bump of the version makes it build a newer one before answering. A full build loads
every shown campaign (about a second at 1,000 campaigns, every request in flight
waiting); an admin's edit or the scheduler's transition changes one or a few. So each
bump also records the ids it changed, and a process whose index is a few versions old
reloads just those. The record keeps the last ``KEPT`` versions: further behind, or past
a bump that named no ids, a process builds in full.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.core import AnyRedis
from services.feed.audience_sets import AudienceKeys
from services.feed.rankings import CATALOG_VERSION_KEY, VERSION_TAG

#: A sorted set under the version's hash tag (one slot on Redis Cluster): score the
#: version, member ``"<version>:<ids comma-separated>"``, or ``"<version>:*"`` for a bump
#: that may have changed anything.
CATALOG_CHANGES_KEY = f"{VERSION_TAG}:catalog-changes"
KEPT = 1000
EVERYTHING = "*"

# The bump and its record in one step: a process that reads version v finds the record
# of every version up to v.
_BUMP = """
local version = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], version, version .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
return version
"""


async def bump(redis: AnyRedis, campaign_ids: Iterable[int] | None) -> int:
    """Bump the catalog version, recording that it changed these campaigns (None: any
    of them). Returns the new version. Call after the change is committed."""
    ids = EVERYTHING if campaign_ids is None else ",".join(str(int(i)) for i in sorted(set(campaign_ids)))
    return int(await redis.eval(_BUMP, 2, CATALOG_VERSION_KEY, CATALOG_CHANGES_KEY, ids or EVERYTHING, KEPT))


async def changed_between(redis: AnyRedis, old: int, new: int) -> set[int] | None:
    """The campaigns versions ``old`` + 1 .. ``new`` changed, or None when that is not
    known (a version no longer recorded, or a bump that named no ids)."""
    if new <= old:
        return set()
    members = await redis.zrangebyscore(CATALOG_CHANGES_KEY, old + 1, new)
    if len(members) != new - old:
        return None
    changed: set[int] = set()
    for member in members:
        _, _, ids = (member.decode() if isinstance(member, bytes) else str(member)).partition(":")
        if ids == EVERYTHING:
            return None
        changed.update(int(i) for i in ids.split(","))
    return changed


async def catalog_version(redis: AnyRedis) -> int:
    """The current catalog version, 0 before the first bump."""
    return int(await redis.get(CATALOG_VERSION_KEY) or 0)


async def catalog_changed(redis: AnyRedis, campaign_ids: Iterable[int] | None = None) -> None:
    """These campaigns changed state (the scheduler started or ended them; None: any
    may have): every process drops its cached campaign data on its next request, and
    its feed index reloads just these."""
    await bump(redis, campaign_ids)


async def campaign_changed(redis: AnyRedis, campaign_id: int) -> None:
    """An admin changed a campaign: every process drops its cached campaign data, and a
    targeted campaign's audience set is rebuilt on next use."""
    await catalog_changed(redis, [campaign_id])
    # The set goes too: the next request rebuilds it before answering (an expired one
    # would keep answering while it is rebuilt).
    keys = AudienceKeys(campaign_id)
    await redis.delete(keys.fresh, keys.members)
