"""A customer's feed profile: what ranking them needs that is not in the index, kept in
Redis so that a customer's next first look (in any process, after their cached ranking
has aged out: services/feed/rankings.py) is re-ranked from it without the database or
the audience sets (issue 19: a first look cost 1.9 ms of server CPU, of which reading the
facts and the memberships took 0.75 ms).

It holds:

- the customer's ``Facts`` (services/feed/viewer.py), stamped with their viewer version:
  valid while that version has not moved, and for ``profile_seconds`` at most (a
  purchase leaving the 90-day window bumps no version);
- the targeted campaigns whose audience held them, stamped with the catalog version they
  were read at: reused for ``membership_seconds`` (never longer than the audience sets'
  own life) while no targeted campaign has changed since that version (the index's
  ``audience_version``: a catalog change naming a targeted campaign, one added or gone,
  or a change the process could not see the details of). Otherwise the next look asks
  the audience sets again (one script call): a new targeted campaign, a changed rule or
  a dropped set is never answered from the profile. A change to other campaigns (a
  teaser starting, an edit) keeps them.

It is written after a ranking computed anything afresh, and dropped by the events that
change a ranking's facts (``viewer_changed``). The key shares the viewer versions' hash
tag, so the versions and the profile are read with one MGET.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pydantic_core

from services.feed.index import FeedIndex
from services.feed.viewer import Facts

#: The layout written below: a profile of another layout is computed again (a rolling
#: upgrade reads no field it does not know).
LAYOUT = 1


@dataclass(frozen=True, slots=True)
class Profile:
    viewer_version: int
    facts: Facts
    facts_at: float  # epoch seconds when the facts were read
    catalog_version: int  # of the catalog when the memberships were read
    checked_at: float  # epoch seconds when the memberships were read
    members: frozenset[int]  # the targeted campaigns whose audience held the customer


def dump(profile: Profile) -> bytes:
    f = profile.facts
    return pydantic_core.to_json({
        "layout": LAYOUT, "vv": profile.viewer_version, "tier": f.tier, "interests": sorted(f.interests),
        "store": f.preferred_store_id, "bought": sorted(f.bought), "joined": sorted(f.joined),
        "facts_at": profile.facts_at, "catalog": profile.catalog_version, "checked_at": profile.checked_at,
        "members": sorted(profile.members),
    })  # fmt: skip


def load(raw: bytes | str | None) -> Profile | None:
    """The profile written by ``dump``; None for none, another layout, or bytes that do
    not parse (computed again rather than failing the request)."""
    if raw is None:
        return None
    try:
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("layout") != LAYOUT:
            return None
        facts = Facts(
            tier=d["tier"], interests=frozenset(d["interests"]), preferred_store_id=d["store"],
            bought=frozenset(d["bought"]), joined=frozenset(d["joined"]),
        )  # fmt: skip
        return Profile(
            viewer_version=int(d["vv"]), facts=facts, facts_at=float(d["facts_at"]),
            catalog_version=int(d["catalog"]), checked_at=float(d["checked_at"]), members=frozenset(d["members"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def members_if_current(profile: Profile, index: FeedIndex, now: float, seconds: float) -> frozenset[int] | None:
    """The profile's memberships when they still answer: read less than ``seconds`` ago,
    at a catalog version no older than the index's last change to a targeted campaign.
    None otherwise."""
    if profile.catalog_version < index.audience_version or now - profile.checked_at >= seconds:
        return None
    return profile.members
