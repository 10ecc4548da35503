"""The discovery feed: the campaigns a customer may see now, ranked for them, each with
the reasons the client can show.

**Candidates**: campaigns scheduled or active, not hidden, offered in the mini program,
in their visible period (teasers before ``starts_at`` included and marked), and, when
targeted, with the customer in their audience. A ``store_id`` narrows them to campaigns
running at that store.

**Score** = the sum of these components (each weight is a setting):

- ``audience``: targeted at the customer (a rule naming their tier reads "for Gold
  members", another rule "picked for you") → ``audience``
- ``interest``: ``interest`` x (campaign tags among the customer's interest tags, at most
  2) / 2 → "because you like coffee"
- ``behaviour``: ``behaviour`` when the campaign's categories meet the categories the
  customer bought in the last 90 days (purchase events) → "because you buy drinks"
- ``store``: ``store`` when the campaign runs at the customer's preferred store → "at
  your store"
- ``distance``: ``distance`` x (1 - d / ``near_km``) for the nearest store of the campaign
  at d ≤ ``near_km`` km from ``lat``/``lng`` (or from ``store_id``) → "1.2 km away"
- ``ending``: ``ending`` x (1 - hours left / (``ending_soon_days`` x 24)) for a running
  campaign ending within ``ending_soon_days`` → "ends in 2 days"
- ``popularity``: ``popularity`` x log(1 + participants) / log(1 + the most participants
  of any candidate) → "1,234 joined" (shown from half the weight)
- ``joined``: ``joined`` (negative by default) when the customer already joined → "you
  joined"

Ties break by the earlier end, then the lower id. Teasers carry "starts in 3 days".

Points are rounded to thousandths, half up (``r3``).

**Cost**: candidates, their stores, participant counts and themes are one per-process
index, held as numpy columns, rebuilt every ``cache_seconds`` (or at once when an admin
changes a campaign: a version counter in Redis); audience membership comes from a Redis
set per targeted campaign rebuilt from its rule every ``audience_ttl`` seconds; a
ranking then costs three small queries about the customer, one script call and a few
dozen vector operations, whatever the number of campaigns, and is kept for the
customer's next requests (services/feed/rankings.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import math
import operator
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from redis.commands.core import AsyncScript
from tortoise import connections
from tortoise.functions import Count

from models.campaigns import Campaign, Theme
from models.customers import Customer
from models.participations import Participation
from models.stores import Store
from services.audience import rules as audience
from services.campaigns.catalog import CampaignSnapshot, load_snapshots
from services.core import errors
from services.core.i18n import pick_language
from services.core.redis import AnyRedis, call_script
from services.core.sql import Params, dialect_of
from services.feed import catalog_changes
from services.feed.rankings import CATALOG_VERSION_KEY, RankingCache, versions

#: Days of purchases that make "categories bought".
BEHAVIOUR_DAYS = 90
CUSTOMER_CHANNEL = "miniprogram"
_INTERESTS = Customer._meta.fields_map["interest_tags"]
log = logging.getLogger("wxcampaign.feed")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True)
class FeedPolicy:
    audience: float = 3.0
    interest: float = 2.0
    behaviour: float = 1.5
    store: float = 2.0
    distance: float = 2.0
    ending: float = 1.0
    popularity: float = 1.0
    joined: float = -2.0
    near_km: float = 5.0
    ending_soon_days: int = 3
    cache_seconds: float = 60.0
    audience_ttl: int = 300
    ranking_seconds: float = 10.0
    ranking_entries: int = 2000

    @functools.cached_property
    def points(self) -> _Points:
        """The fixed points, rounded once (hashing a policy per card would cost more)."""
        return _points(self)


# --- texts --------------------------------------------------------------------------

_TIERS_ZH = {"standard": "普通", "silver": "银卡", "gold": "金卡", "platinum": "白金"}
_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "tier": "for {tier} members",
        "audience": "picked for you",
        "interest": "because you like {tag}",
        "behaviour": "because you buy {category}",
        "store": "at your store",
        "distance": "{km} km away",
        "ending_days": "ends in {n} day{s}",
        "ending_hours": "ends in {n} hour{s}",
        "popularity": "{n} joined",
        "joined": "you joined",
        "teaser_days": "starts in {n} day{s}",
        "teaser_hours": "starts in {n} hour{s}",
    },
    "zh-CN": {
        "tier": "{tier}会员专享",
        "audience": "为你精选",
        "interest": "因为你喜欢{tag}",
        "behaviour": "你常买{category}",
        "store": "你的常去门店可用",
        "distance": "距你{km}公里",
        "ending_days": "还剩{n}天",
        "ending_hours": "还剩{n}小时",
        "popularity": "{n}人已参加",
        "joined": "已参加",
        "teaser_days": "{n}天后开始",
        "teaser_hours": "{n}小时后开始",
    },
}


def _text(language: str, key: str, **values: Any) -> str:
    return _TEXTS.get(language, _TEXTS["en"])[key].format(**values)


def _in(language: str, key: str, hours: float) -> str:
    """ "ends in 5 hours" below a day, else "ends in 2 days" (rounded)."""
    n, key = (max(1, math.ceil(hours)), f"{key}_hours") if hours < 24 else (max(1, round(hours / 24)), f"{key}_days")
    return _text(language, key, n=n, s="" if n == 1 else "s")


# --- arithmetic -------------------------------------------------------------------


def r3(x: float) -> float:
    """Thousandths, half up. The vectorised scoring (``_r3``) does the very same IEEE
    operations, so a score computed for a whole index at once and the one ``rank_one``
    explains are the same float (Python's ``round`` rounds the exact decimal, numpy's
    the scaled binary: they differ at ties)."""
    return math.floor(x * 1000.0 + 0.5) / 1000.0


def _r3(x: np.ndarray) -> np.ndarray:
    return np.floor(x * 1000.0 + 0.5) / 1000.0


# --- geometry -----------------------------------------------------------------------


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine), kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


# --- the per-process index ----------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: differences of these divided by 10**6 are
    the same floats as ``timedelta.total_seconds()`` (the scores must not move)."""
    return (moment - _EPOCH) // _MICRO


@dataclass(slots=True, frozen=True)
class _Entry:
    """What explaining one campaign needs, precomputed when the index is built."""

    snap: CampaignSnapshot
    id: int
    targeted: bool
    scheduled: bool
    shown_from_us: int
    starts_us: int
    ends_us: int
    store_ids: frozenset[int] | None  # None: every store
    open_stores: tuple[int, ...]  # its stores among the index's (open) ones
    participants: int
    share: float  # log(1 + participants) / log(1 + most participants), 0 without any


@dataclass(slots=True, frozen=True)
class _Weighed:
    """Per index and policy: the parts of each entry's score that no viewer changes."""

    popularity: np.ndarray  # by entry, the rounded popularity points
    ending_from_us: np.ndarray  # by entry, a little before its "ending soon" window opens


def _matrix(rows: list[tuple[str, ...]], vocabulary: dict[str, int]) -> np.ndarray:
    """One row per entry, one column per word: 1 where the entry has it."""
    out = np.zeros((len(rows), max(1, len(vocabulary))), dtype=np.uint8)
    for i, words in enumerate(rows):
        for word in words:
            out[i, vocabulary[word]] = 1
    return out


@dataclass
class FeedIndex:
    """Every campaign a feed may show, as columns (numpy arrays, one row per entry) that
    score a viewer against all of them in a few dozen vector operations."""

    built_at: float
    version: int
    campaigns: list[CampaignSnapshot]
    participants: dict[int, int]
    stores: dict[int, tuple[float, float]]  # active stores: id -> (lat, lng)
    themes: dict[int, str]
    most_participants: int = field(init=False)
    entries: list[_Entry] = field(init=False)
    targeted: list[CampaignSnapshot] = field(init=False)
    position: dict[int, int] = field(init=False)  # campaign id -> row
    tag_column: dict[str, int] = field(init=False)
    category_column: dict[str, int] = field(init=False)
    #: What callers derive from one campaign for any viewer (a card's texts), kept as
    #: long as the index: bounded by campaigns x languages.
    memo: dict[Any, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.most_participants = max(self.participants.values(), default=0)
        most = self.most_participants
        entries = []
        for snap in self.campaigns:
            count = self.participants.get(snap.id, 0)
            open_stores = () if snap.store_ids is None else tuple(i for i in snap.store_ids if i in self.stores)
            entry = _Entry(
                snap=snap, id=snap.id, targeted=snap.targeted, scheduled=snap.status == "scheduled",
                shown_from_us=epoch_us(snap.shown_from), starts_us=epoch_us(snap.starts_at),
                ends_us=epoch_us(snap.ends_at),
                store_ids=snap.store_ids, open_stores=open_stores, participants=count,
                share=math.log1p(count) / math.log1p(most) if count and most else 0.0,
            )  # fmt: skip
            entries.append(entry)
        self.entries = entries
        self.targeted = [s for s in self.campaigns if s.targeted]
        self.position = {e.id: i for i, e in enumerate(entries)}
        self.tag_column = {t: i for i, t in enumerate(sorted({t for s in self.campaigns for t in s.tags}))}
        self.category_column = {c: i for i, c in enumerate(sorted({c for s in self.campaigns for c in s.categories}))}
        self._ids = np.array([e.id for e in entries], dtype=np.int64)
        self._shown_from_us = np.array([e.shown_from_us for e in entries], dtype=np.int64)
        self._starts_us = np.array([e.starts_us for e in entries], dtype=np.int64)
        self._ends_us = np.array([e.ends_us for e in entries], dtype=np.int64)
        self._scheduled = np.array([e.scheduled for e in entries], dtype=bool)
        self._targeted = np.array([e.targeted for e in entries], dtype=bool)
        self._everywhere = np.array([e.store_ids is None for e in entries], dtype=bool)
        self._theme_ids = np.array([-1 if s.theme_id is None else s.theme_id for s in self.campaigns], dtype=np.int64)
        self._tags = _matrix([s.tags for s in self.campaigns], self.tag_column)
        self._categories = _matrix([s.categories for s in self.campaigns], self.category_column)
        # Each entry's open stores as slots of `_store_order`, padded with one slot past
        # the end (where a request puts +inf): the nearest is then one gather and a min.
        self._store_order = list(self.stores)
        # (longitude, latitude in radians, its cosine) of each store, in that order.
        self._store_trig = [
            (lng, p, math.cos(p)) for lng, p in ((lng, math.radians(lat)) for lat, lng in self.stores.values())
        ]
        slot = {store_id: k for k, store_id in enumerate(self._store_order)}
        width = max((len(e.open_stores) for e in entries), default=0)
        self._open_slots = np.full((len(entries), max(1, width)), len(self._store_order), dtype=np.int64)
        for i, e in enumerate(entries):
            for j, store_id in enumerate(e.open_stores):
                self._open_slots[i, j] = slot[store_id]
        self._runs_at: dict[int, np.ndarray] = {}
        self._weighed: dict[FeedPolicy, _Weighed] = {}
        self._tiers: dict[int, frozenset[str]] = {}
        self.memo = {}

    def tiers(self, snap: CampaignSnapshot) -> frozenset[str]:
        """The tiers a targeted campaign's rule names positively."""
        found = self._tiers.get(snap.id)
        if found is None:
            found = self._tiers[snap.id] = frozenset(_tiers_in(snap.audience_rule))
        return found

    def weighed(self, policy: FeedPolicy) -> _Weighed:
        found = self._weighed.get(policy)
        if found is None:
            # A second early: the exact test of the window stays the float one rank_one makes.
            window_us = policy.ending_soon_days * 24 * 3600 * 10**6 + 10**6
            found = self._weighed[policy] = _Weighed(
                np.array([r3(policy.popularity * e.share) if e.share else 0.0 for e in self.entries]),
                self._ends_us - window_us,
            )
        return found

    def runs_at(self, store_id: int) -> np.ndarray:
        """By entry: runs at this store (every store, or listed; closed stores count)."""
        found = self._runs_at.get(store_id)
        if found is None:
            found = self._runs_at[store_id] = np.array(
                [e.store_ids is None or store_id in e.store_ids for e in self.entries], dtype=bool
            )
        return found

    def distances_from(self, lat: float, lng: float) -> list[float]:
        """Kilometres to each store of ``_store_order``: ``distance_km``'s very operations,
        with each store's share done once per index."""
        p1 = math.radians(lat)
        c1 = math.cos(p1)
        sin, asin, sqrt, radians = math.sin, math.asin, math.sqrt, math.radians
        return [
            2 * 6371.0 * asin(min(1.0, sqrt(sin((p2 - p1) / 2) ** 2 + c1 * c2 * sin(radians(lng2 - lng) / 2) ** 2)))
            for lng2, p2, c2 in self._store_trig
        ]

    def rows_of(self, campaign_ids: Iterable[int]) -> np.ndarray:
        """By entry: one of these campaigns."""
        out = np.zeros(len(self.entries), dtype=bool)
        rows = [self.position[i] for i in campaign_ids if i in self.position]
        if rows:
            out[rows] = True
        return out


async def _shown(now: datetime, ids: Iterable[int] | None = None) -> list[CampaignSnapshot]:
    """The campaigns a feed may show (of ``ids``, or all), as snapshots."""
    rows = Campaign.filter(status__in=("scheduled", "active"), visibility__in=("public", "targeted"), ends_at__gt=now)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    return [s for s in await load_snapshots(await rows) if CUSTOMER_CHANNEL in s.channels]


async def _participants(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    counted = (
        await Participation.filter(campaign_id__in=ids)
        .annotate(n=Count("id"))
        .group_by("campaign_id")
        .values_list("campaign_id", "n")
    )
    return {int(c): int(n) for c, n in counted}


async def _theme_names(theme_ids: set[int]) -> dict[int, str]:
    return dict(await Theme.filter(id__in=theme_ids).values_list("id", "name")) if theme_ids else {}  # type: ignore[arg-type]


async def build_index(now: datetime, version: int) -> FeedIndex:
    """Every campaign a feed may show, with what ranking needs, in a fixed number of queries."""
    snaps = await _shown(now)
    participants = await _participants([s.id for s in snaps])
    stores = {
        int(i): (float(lat), float(lng))
        for i, lat, lng in await Store.filter(is_active=True).values_list("id", "latitude", "longitude")
    }
    themes = await _theme_names({s.theme_id for s in snaps if s.theme_id is not None})
    return FeedIndex(time.monotonic(), version, snaps, participants, stores, themes)


async def update_index(old: FeedIndex, changed: set[int], now: datetime, version: int) -> FeedIndex:
    """``old`` with the ``changed`` campaigns reloaded (or left out, when no longer
    shown): what a catalog change costs instead of a full build (a few queries about
    these campaigns, and the columns computed again: ~10 ms at 1,000 campaigns, against
    about a second). The other campaigns' participant counts, the stores and the theme
    names stay as ``old`` has them until the next full build, which comes when ``old``'s
    would have (its ``built_at`` carries over)."""
    snaps = await _shown(now, changed)
    kept = [s for s in old.campaigns if s.id not in changed]
    participants = {i: n for i, n in old.participants.items() if i not in changed}
    participants.update(await _participants([s.id for s in snaps]))
    themes = dict(old.themes)
    themes.update(await _theme_names({s.theme_id for s in snaps if s.theme_id is not None} - set(themes)))
    return FeedIndex(old.built_at, version, kept + snaps, participants, old.stores, themes)


# --- audience membership --------------------------------------------------------------

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
        await redis.eval(_RELEASE, 1, keys.building, token)  # type: ignore[misc]


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


# --- one customer's context -----------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    customer_id: int
    tier: str
    interests: frozenset[str]
    preferred_store_id: int | None
    bought: frozenset[str]
    joined: frozenset[int]
    location: tuple[float, float] | None
    store_id: int | None
    language: str


def _viewer_sql(p: Params, customer_id: int, since: datetime) -> str:
    """The customer's tier, interests and preferred store, the categories of their
    applied purchases since ``since`` and the campaigns they joined: one statement (the
    ORM would take three queries, each with its own trip to the database)."""
    if p.dialect == "postgres":
        bought, joined = (
            "COALESCE(json_agg(e.categories), '[]'::json)::text",
            "COALESCE(json_agg(x.campaign_id), '[]'::json)::text",
        )
    else:
        bought, joined = "json_group_array(json(e.categories))", "json_group_array(x.campaign_id)"
    return (
        f"SELECT c.membership_tier, c.interest_tags, c.preferred_store_id,"
        f" (SELECT {bought} FROM integration_events e WHERE e.customer_id = c.id AND e.type = 'purchase'"
        f" AND e.status = 'applied' AND e.occurred_at >= {p(since)}),"
        f" (SELECT {joined} FROM participations x WHERE x.customer_id = c.id)"
        f" FROM customers c WHERE c.id = {p(customer_id)}"
    )


async def viewer(
    customer_id: int, language: str, now: datetime, *, store_id: int | None, lat: float | None, lng: float | None
) -> Viewer:
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    _, rows = await conn.execute_query(_viewer_sql(p, customer_id, now - timedelta(days=BEHAVIOUR_DAYS)), p.values)
    if not rows:
        raise errors.InvalidToken("the account is gone")
    tier, interests, preferred_store_id, bought_json, joined_json = tuple(rows[0])
    bought: set[str] = set()
    for categories in json.loads(bought_json):
        bought.update(categories or [])
    location = (lat, lng) if lat is not None and lng is not None else None
    return Viewer(
        customer_id=customer_id, tier=tier, interests=frozenset(_INTERESTS.to_python_value(interests) or []),
        preferred_store_id=preferred_store_id, bought=frozenset(bought), joined=frozenset(json.loads(joined_json)),
        location=location, store_id=store_id, language=language,
    )  # fmt: skip


# --- scoring --------------------------------------------------------------------------


class Reason(NamedTuple):
    code: str
    text: str
    points: float


@dataclass
class Ranked:
    snap: CampaignSnapshot
    phase: str
    score: float
    reasons: list[Reason]
    joined: bool
    distance_km: float | None
    participants: int
    info: list[Reason] = field(default_factory=list)

    @property
    def joinable(self) -> bool:
        return self.phase == "running" and not self.joined


def _tiers_in(rule: Any, negated: bool = False) -> set[str]:
    """Tiers a rule names positively (not under a ``not``)."""
    found: set[str] = set()
    if isinstance(rule, dict):
        for key, value in rule.items():
            if key == "tier" and not negated:
                found |= {value} if isinstance(value, str) else {v for v in value if isinstance(v, str)}
            elif key in ("all", "any") and isinstance(value, list):
                for item in value:
                    found |= _tiers_in(item, negated)
            elif key == "not":
                found |= _tiers_in(value, not negated)
    return found


def _runs_at(snap: CampaignSnapshot, store_id: int) -> bool:
    return snap.store_ids is None or store_id in snap.store_ids


@dataclass(frozen=True)
class _Points:
    """A policy's fixed points, rounded once (``r3``)."""

    audience: float
    interest: tuple[float, float, float]  # by tags liked: 0, 1, 2 or more
    behaviour: float
    store: float
    joined: float


def _points(policy: FeedPolicy) -> _Points:
    return _Points(
        r3(policy.audience), (0.0, r3(policy.interest * 1 / 2), r3(policy.interest * 2 / 2)), r3(policy.behaviour),
        r3(policy.store), r3(policy.joined),
    )  # fmt: skip


def _popularity(index: FeedIndex, snap: CampaignSnapshot, policy: FeedPolicy, lang: str) -> tuple[float, str]:
    """(rounded points, text) of a campaign's popularity, kept per index."""
    key = ("popularity", snap.id, policy.popularity, lang)
    found = index.memo.get(key)
    if found is None:
        count, most = index.participants.get(snap.id, 0), index.most_participants
        found = (0.0, "")
        if count and most:
            share = math.log1p(count) / math.log1p(most)
            # Below half the weight it counts without being said.
            text = _TEXTS.get(lang, _TEXTS["en"])["popularity"].format(n=f"{count:,}") if share >= 0.5 else ""
            found = (r3(policy.popularity * share), text)
        index.memo[key] = found
    return found


def rank_one(
    snap: CampaignSnapshot, phase: str, index: FeedIndex, who: Viewer, policy: FeedPolicy, now: datetime,
    targeted_member: bool, distance: float | None,
) -> Ranked:  # fmt: skip
    """One campaign's score with its reasons and texts: the explanation of what ``score``
    computed for it (``distance``: km to its nearest store, None without a location).
    Each component is rounded, then added in the order listed in this module's
    docstring, as ``score_rows`` does (so the same float)."""
    lang = who.language
    texts = _TEXTS.get(lang, _TEXTS["en"])
    fixed = policy.points
    memo = index.memo  # reasons shared by many viewers, written once per index
    reasons: list[Reason] = []  # components with points, in the order the score adds them
    if targeted_member and fixed.audience:
        tier = who.tier if who.tier in index.tiers(snap) else None
        key = ("audience", tier, lang, fixed.audience)
        found = memo.get(key)
        if found is None:
            tier_name = (_TIERS_ZH.get(tier, tier) if lang == "zh-CN" else tier.capitalize()) if tier else None
            text = texts["tier"].format(tier=tier_name) if tier_name else texts["audience"]
            found = memo[key] = Reason("audience", text, fixed.audience)
        reasons.append(found)
    if who.interests and snap.tags:
        liked = who.interests.intersection(snap.tags)
        if liked and fixed.interest[min(2, len(liked))]:
            key = ("interest", min(liked), min(2, len(liked)), lang, fixed.interest)
            found = memo.get(key)
            if found is None:
                text = texts["interest"].format(tag=key[1])
                found = memo[key] = Reason("interest", text, fixed.interest[key[2]])
            reasons.append(found)
    if who.bought and snap.categories and fixed.behaviour:
        bought = who.bought.intersection(snap.categories)
        if bought:
            key = ("behaviour", min(bought), lang, fixed.behaviour)
            found = memo.get(key)
            if found is None:
                found = memo[key] = Reason("behaviour", texts["behaviour"].format(category=key[1]), fixed.behaviour)
            reasons.append(found)
    if who.preferred_store_id is not None and fixed.store and _runs_at(snap, who.preferred_store_id):
        reasons.append(Reason("store", texts["store"], fixed.store))
    if distance is not None and distance <= policy.near_km and policy.near_km > 0:
        points = r3(policy.distance * (1 - distance / policy.near_km))
        if points:
            reasons.append(Reason("distance", texts["distance"].format(km=f"{distance:.1f}"), points))
    if phase == "running":
        left = (snap.ends_at - now).total_seconds() / 3600
        window = policy.ending_soon_days * 24
        if 0 < left <= window:
            points = r3(policy.ending * (1 - left / window))
            if points:
                reasons.append(Reason("ending", _in(lang, "ending", left), points))
    points, text = _popularity(index, snap, policy, lang)
    if points:
        reasons.append(Reason("popularity", text, points))
    joined = snap.id in who.joined
    if joined and fixed.joined:
        reasons.append(Reason("joined", texts["joined"], fixed.joined))
    total = 0.0
    for r in reasons:  # in order, one addition each, as score_rows (not sum(): 3.12 compensates)
        total += r.points
    info = (
        [Reason("teaser", _in(lang, "teaser", (snap.starts_at - now).total_seconds() / 3600), 0.0)]
        if phase == "teaser"
        else []
    )
    # Strongest first; reverse=True keeps equal points in the order above (stable).
    shown = sorted([r for r in reasons if r.text], key=_POINTS, reverse=True)
    return Ranked(snap, phase, r3(total), shown + info, joined, distance, index.participants.get(snap.id, 0), info)


_POINTS = operator.itemgetter(2)


class Scored(NamedTuple):
    """A candidate's place in the ranking, before its reasons are written."""

    neg_score: float
    ends_us: int
    id: int
    entry: _Entry
    running: bool
    distance_km: float | None
    member: bool  # a targeted campaign whose audience holds the viewer

    @property
    def score(self) -> float:
        return -self.neg_score

    @property
    def snap(self) -> CampaignSnapshot:
        return self.entry.snap

    @property
    def phase(self) -> str:
        return "running" if self.running else "teaser"


@dataclass(slots=True, frozen=True)
class Scores:
    """A viewer's candidates, best first: their rows in the index and what scoring found
    for each (arrays: a cached ranking stays a few kilobytes; a page reads a few)."""

    rows: np.ndarray  # int64
    scores: np.ndarray  # float64
    distances: np.ndarray  # float64, +inf: none (no location, or no open store)
    running: np.ndarray  # bool


def score_rows(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> Scores:
    """Every campaign this viewer may see, best first, with the score ``rank_one`` gives
    it: the same components, rounded and summed in the same order with the same IEEE
    operations (so the same floats), computed for the whole index at once without
    reasons or texts; a request writes those only for the campaigns it shows. Ties break
    by the earlier end, then the lower id."""
    if not index.entries:
        return Scores(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    now_us = epoch_us(now)
    keep = (index._shown_from_us <= now_us) & (now_us < index._ends_us)
    keep &= ~index._targeted | index.rows_of(members)
    if who.store_id is not None:
        keep &= index.runs_at(who.store_id)
    rows = np.flatnonzero(keep)
    n = len(rows)
    # Components in rank_one's order, each 0.0 where it does not apply (x + 0.0 == x).
    total = np.where(index._targeted[rows], r3(policy.audience), 0.0)
    liked = [index.tag_column[t] for t in who.interests if t in index.tag_column]
    if liked:
        count = np.minimum(index._tags[np.ix_(rows, liked)].sum(axis=1), 2)
        total = total + np.array([0.0, r3(policy.interest * 1 / 2), r3(policy.interest * 2 / 2)])[count]
    bought = [index.category_column[c] for c in who.bought if c in index.category_column]
    if bought:
        total = total + np.where(index._categories[np.ix_(rows, bought)].any(axis=1), r3(policy.behaviour), 0.0)
    if who.preferred_store_id is not None:
        total = total + np.where(index.runs_at(who.preferred_store_id)[rows], r3(policy.store), 0.0)
    where = who.location
    if where is None and who.store_id is not None:
        where = index.stores.get(who.store_id)
    distance = None
    if where is not None:
        # Per store in Python's math (a few dozen): the same floats as distance_km.
        near = index.distances_from(*where)
        distance = np.array([*near, math.inf])[index._open_slots[rows]].min(axis=1)
        if near:
            distance[index._everywhere[rows]] = min(near)
        near_km = policy.near_km
        if near_km > 0:
            points = np.zeros(n)
            close = np.flatnonzero(distance <= near_km)
            points[close] = _r3(policy.distance * (1 - distance[close] / near_km))
            total = total + points
    running = ~index._scheduled[rows] & (index._starts_us[rows] <= now_us)
    soon = np.flatnonzero(running & (now_us >= index.weighed(policy).ending_from_us[rows]))
    if len(soon):
        window = policy.ending_soon_days * 24
        left = (index._ends_us[rows[soon]] - now_us) / 10**6 / 3600
        inside = (0 < left) & (left <= window)
        points = np.zeros(n)
        points[soon[inside]] = _r3(policy.ending * (1 - left[inside] / window))
        total = total + points
    total = total + index.weighed(policy).popularity[rows]
    if who.joined:
        total = total + np.where(index.rows_of(who.joined)[rows], r3(policy.joined), 0.0)
    scores = _r3(total)
    order = np.lexsort((index._ids[rows], index._ends_us[rows], -scores))
    distances = np.full(n, math.inf) if distance is None else distance[order]
    return Scores(rows[order], scores[order], distances, running[order])


@dataclass(slots=True, frozen=True)
class Sections:
    recommended: list[Scored]
    ending_soon: list[Scored]
    near_you: list[Scored]
    themed: list[tuple[int, str, list[Scored]]]  # (theme id, its name, its campaigns)


@dataclass
class Ranking:
    """A viewer's ranking, best first; ``explain`` writes one item's reasons. A few
    kilobytes (numpy arrays): cached rankings keep no rendered items, which would weigh
    a hundred times more."""

    scores: Scores
    index: FeedIndex
    who: Viewer
    policy: FeedPolicy
    now: datetime
    #: False when a targeted campaign was left out because its audience set was being
    #: built elsewhere: answered, never kept for the next requests.
    complete: bool = True

    def __len__(self) -> int:
        return len(self.scores.rows)

    def page(self, offset: int, limit: int) -> list[Scored]:
        return self.at(np.arange(offset, min(offset + limit, len(self)), dtype=np.int64))

    def at(self, positions: np.ndarray) -> list[Scored]:
        """The candidates at these places of the ranking (0: the best), in that order."""
        s, entries, inf = self.scores, self.index.entries, math.inf
        out = []
        for row, value, running, distance in zip(
            s.rows[positions].tolist(), s.scores[positions].tolist(), s.running[positions].tolist(),
            s.distances[positions].tolist(), strict=True,
        ):  # fmt: skip
            e = entries[row]
            out.append(Scored(-value, e.ends_us, e.id, e, running, None if distance == inf else distance, e.targeted))
        return out

    def sections(self, n: int) -> Sections:
        """The home page's sections, at most ``n`` campaigns each: the best; running and
        ending within ``ending_soon_days``, soonest first (then the lower id); within
        ``near_km`` of the viewer, nearest first (equal distances in ranking order); and
        per theme in ranking order, the theme of the best campaign first. Chosen over the
        whole ranking with array operations: only the campaigns shown become ``Scored``."""
        s, index = self.scores, self.index
        until_us = epoch_us(self.now) + self.policy.ending_soon_days * 86_400 * 10**6
        ends = index._ends_us[s.rows]
        ending = np.flatnonzero(s.running & (ends <= until_us))
        ending = ending[np.lexsort((index._ids[s.rows[ending]], ends[ending]))][:n]
        near = np.flatnonzero(s.distances <= self.policy.near_km)
        near = near[np.argsort(s.distances[near], kind="stable")][:n]
        theme_of = index._theme_ids[s.rows]
        themed = []
        themes, first = np.unique(theme_of, return_index=True)
        for k in np.argsort(first, kind="stable"):
            theme_id = int(themes[k])
            if theme_id >= 0:
                themed.append(
                    (theme_id, index.themes.get(theme_id, ""), self.at(np.flatnonzero(theme_of == theme_id)[:n]))
                )
        return Sections(self.page(0, n), self.at(ending), self.at(near), themed)

    @property
    def items(self) -> list[Scored]:
        return self.page(0, len(self))

    def explain(self, s: Scored) -> Ranked:
        return rank_one(s.snap, s.phase, self.index, self.who, self.policy, self.now, s.member, s.distance_km)


def score(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Scored]:
    """``score_rows`` as a list of ``Scored``."""
    return Ranking(score_rows(index, who, members, policy, now), index, who, policy, now).items


def rank(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Ranked]:
    """Every campaign this viewer may see, best first, each with its reasons."""
    ranking = Ranking(score_rows(index, who, members, policy, now), index, who, policy, now)
    return [ranking.explain(s) for s in ranking.items]


# --- the runtime ----------------------------------------------------------------------


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
        return int(await self.redis.get(CATALOG_VERSION_KEY) or 0)

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
                built = await build_index(now, version)
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
        neither the catalog nor the customer changed (see services/feed/rankings.py).
        A ``store_id`` must name an open store."""
        catalog, mine = await versions(self.redis, customer_id)
        index = await self.index(now, catalog)
        if store_id is not None and store_id not in index.stores:
            raise errors.UnknownStore(f"no open store with id {store_id}", details={"store_ids": [store_id]})

        async def compute() -> Ranking:
            who = await viewer(customer_id, language, now, store_id=store_id, lat=lat, lng=lng)
            return await self.ranked(who, now, index)

        return await self.rankings.get((customer_id, language, store_id, lat, lng), (catalog, mine), compute)

    async def ranked(self, who: Viewer, now: datetime, index: FeedIndex | None = None) -> Ranking:
        index = index or await self.index(now)
        ids = index.memo.get("audience-ids")
        if ids is None:
            ids = index.memo["audience-ids"] = audience_ids(index.targeted)
        members, complete = await audience_of(
            self.redis, self._audience, who.customer_id, index.targeted, self.policy.audience_ttl,
            self._refresh_later, ids,
        )  # fmt: skip
        ranking = Ranking(score_rows(index, who, members, self.policy, now), index, who, self.policy, now)
        ranking.complete = complete
        return ranking


async def catalog_changed(redis: AnyRedis, campaign_ids: Iterable[int] | None = None) -> None:
    """These campaigns changed state (the scheduler started or ended them; None: any
    may have): every process drops its cached campaign data on its next request, and
    its feed index reloads just these (services/feed/catalog_changes.py)."""
    await catalog_changes.bump(redis, campaign_ids)


async def campaign_changed(redis: AnyRedis, campaign_id: int) -> None:
    """An admin changed a campaign: every process drops its cached campaign data, and a
    targeted campaign's audience set is rebuilt on next use."""
    await catalog_changed(redis, [campaign_id])
    # The set goes too: the next request rebuilds it before answering (an expired one
    # would keep answering while it is rebuilt).
    keys = AudienceKeys(campaign_id)
    await redis.delete(keys.fresh, keys.members)


# --- paging ---------------------------------------------------------------------------


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["o"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, int) or not 0 <= value <= 100_000:
        raise errors.ValidationFailed(
            "query cursor: not a cursor this server issued",
            details={"errors": [{"field": "cursor", "message": "invalid cursor", "type": "invalid_cursor"}]},
        )
    return value


def texts_of(snap: CampaignSnapshot, accept_language: str | None) -> tuple[str, str, str]:
    """(language used, title, summary) for an ``Accept-Language`` header."""
    lang = pick_language(accept_language, list(snap.content), snap.default_language)
    body = snap.content.get(lang, {})
    return lang, body.get("title", ""), body.get("summary", "")
