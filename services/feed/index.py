"""The feed's per-process index: every campaign a feed may show, with its stores,
participant counts and theme names, held as numpy columns so that scoring a viewer
against all of them (services/feed/scoring.py) is a few dozen vector operations.

**Candidates**: campaigns scheduled or active, not hidden, offered in the mini program,
in their visible period (teasers before ``starts_at`` included), ending in the future.

**Cost**: ``build_index`` loads them in a fixed number of queries (about a second at
1,000 campaigns); ``update_index`` reloads only the campaigns a catalog change named
(services/feed/catalog_changes.py). The runtime (services/feed/runtime.py) keeps one
index per process, rebuilt every ``cache_seconds`` or when the catalog version moves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from tortoise.functions import Count

from models.campaigns import Campaign, Theme
from models.participations import Participation
from models.stores import Store
from services.campaigns import CampaignSnapshot, load_snapshots
from services.feed.policy import FeedPolicy, r3

CUSTOMER_CHANNEL = "miniprogram"


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine), kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly: differences of these divided by 10**6 are
    the same floats as ``timedelta.total_seconds()`` (the scores must not move)."""
    return (moment - _EPOCH) // _MICRO


@dataclass(slots=True, frozen=True)
class Entry:
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
    #: The catalog version of the latest change this process saw to the targeted campaigns
    #: (one added, changed or gone): a customer's audience memberships read at a later or
    #: equal version still answer (services/feed/profile.py).
    audience_version: int = 0
    most_participants: int = field(init=False)
    entries: list[Entry] = field(init=False)
    targeted: list[CampaignSnapshot] = field(init=False)
    position: dict[int, int] = field(init=False)  # campaign id -> row
    tag_column: dict[str, int] = field(init=False)
    category_column: dict[str, int] = field(init=False)
    #: What callers derive from one campaign for any viewer (a card's texts), kept as
    #: long as the index: bounded by campaigns x languages.
    memo: dict[Any, Any] = field(init=False)
    # The columns scoring reads (services/feed/scoring.py), one row per entry.
    ids: np.ndarray = field(init=False)  # int64: campaign id
    shown_from_us: np.ndarray = field(init=False)  # int64: epoch_us of each bound
    starts_us: np.ndarray = field(init=False)
    ends_us: np.ndarray = field(init=False)
    scheduled: np.ndarray = field(init=False)  # bool
    is_targeted: np.ndarray = field(init=False)  # bool
    everywhere: np.ndarray = field(init=False)  # bool: runs at every store
    theme_ids: np.ndarray = field(init=False)  # int64, -1: no theme
    tags: np.ndarray = field(init=False)  # uint8 by tag_column: 1 where the campaign has it
    categories: np.ndarray = field(init=False)  # uint8 by category_column
    #: By entry, its open stores as slots of ``_store_order``, padded with one slot past
    #: the end (where a request puts +inf): the nearest is then one gather and a min.
    open_slots: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.most_participants = max(self.participants.values(), default=0)
        most = self.most_participants
        entries = []
        for snap in self.campaigns:
            count = self.participants.get(snap.id, 0)
            open_stores = () if snap.store_ids is None else tuple(i for i in snap.store_ids if i in self.stores)
            entry = Entry(
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
        self.ids = np.array([e.id for e in entries], dtype=np.int64)
        self.shown_from_us = np.array([e.shown_from_us for e in entries], dtype=np.int64)
        self.starts_us = np.array([e.starts_us for e in entries], dtype=np.int64)
        self.ends_us = np.array([e.ends_us for e in entries], dtype=np.int64)
        self.scheduled = np.array([e.scheduled for e in entries], dtype=bool)
        self.is_targeted = np.array([e.targeted for e in entries], dtype=bool)
        self.everywhere = np.array([e.store_ids is None for e in entries], dtype=bool)
        self.theme_ids = np.array([-1 if s.theme_id is None else s.theme_id for s in self.campaigns], dtype=np.int64)
        self.tags = _matrix([s.tags for s in self.campaigns], self.tag_column)
        self.categories = _matrix([s.categories for s in self.campaigns], self.category_column)
        self._store_order = list(self.stores)
        # (longitude, latitude in radians, its cosine) of each store, in that order.
        self._store_trig = [
            (lng, p, math.cos(p)) for lng, p in ((lng, math.radians(lat)) for lat, lng in self.stores.values())
        ]
        slot = {store_id: k for k, store_id in enumerate(self._store_order)}
        width = max((len(e.open_stores) for e in entries), default=0)
        self.open_slots = np.full((len(entries), max(1, width)), len(self._store_order), dtype=np.int64)
        for i, e in enumerate(entries):
            for j, store_id in enumerate(e.open_stores):
                self.open_slots[i, j] = slot[store_id]
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
                self.ends_us - window_us,
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


#: Campaigns read and turned into snapshots per step of a build. The ORM's rows are made
#: in the event loop once their query returns (about 0.13 ms a campaign): a build of 300
#: campaigns in one step held every request in flight for 40–90 ms, the feed's p99 (bench/
#: RESULTS.md, session 11). In steps of 100, the loop serves requests between them.
SHOWN_STEP = 100


async def _shown(now: datetime, ids: Iterable[int] | None = None) -> list[CampaignSnapshot]:
    """The campaigns a feed may show (of ``ids``, or all), as snapshots, by id; read
    ``SHOWN_STEP`` at a time (their ids first, in one light query)."""
    rows = Campaign.filter(status__in=("scheduled", "active"), visibility__in=("public", "targeted"), ends_at__gt=now)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    wanted = list(await rows.order_by("id").values_list("id", flat=True))
    out: list[CampaignSnapshot] = []
    for start in range(0, len(wanted), SHOWN_STEP):
        # The same conditions again: one that stopped being shown meanwhile is left out.
        step = await rows.filter(id__in=wanted[start : start + SHOWN_STEP]).order_by("id")
        out += [s for s in await load_snapshots(step) if CUSTOMER_CHANNEL in s.channels]
    return out


async def participant_counts(ids: list[int]) -> dict[int, int]:
    """Participations per campaign (of ``ids``), from the database."""
    if not ids:
        return {}
    counted = (
        await Participation.filter(campaign_id__in=ids)
        .annotate(n=Count("id"))
        .group_by("campaign_id")
        .values_list("campaign_id", "n")
    )
    return {int(c): int(n) for c, n in counted}


async def theme_names(theme_ids: set[int]) -> dict[int, str]:
    return dict(await Theme.filter(id__in=theme_ids).values_list("id", "name")) if theme_ids else {}


async def build_index(now: datetime, version: int, previous: FeedIndex | None = None) -> FeedIndex:
    """Every campaign a feed may show, with what ranking needs, in a fixed number of
    queries. ``previous``: the index it replaces, whose ``audience_version`` carries over
    when it was of the same catalog version (a periodic rebuild: nothing announced has
    changed); otherwise any targeted campaign may have changed, at ``version``."""
    snaps = await _shown(now)
    participants = await participant_counts([s.id for s in snaps])
    stores = {
        int(i): (float(lat), float(lng))
        for i, lat, lng in await Store.filter(is_active=True).values_list("id", "latitude", "longitude")
    }
    themes = await theme_names({s.theme_id for s in snaps if s.theme_id is not None})
    same = previous is not None and previous.version == version
    audience_version = previous.audience_version if previous is not None and same else version
    return FeedIndex(time.monotonic(), version, snaps, participants, stores, themes, audience_version)


async def update_index(old: FeedIndex, changed: set[int], now: datetime, version: int) -> FeedIndex:
    """``old`` with the ``changed`` campaigns reloaded (or left out, when no longer
    shown): what a catalog change costs instead of a full build (a few queries about
    these campaigns, and the columns computed again: ~10 ms at 1,000 campaigns, against
    about a second). The other campaigns' participant counts, the stores and the other
    themes' names stay as ``old`` has them until the next full build, which comes when ``old``'s
    would have (its ``built_at`` carries over)."""
    snaps = await _shown(now, changed)
    kept = [s for s in old.campaigns if s.id not in changed]
    participants = {i: n for i, n in old.participants.items() if i not in changed}
    participants.update(await participant_counts([s.id for s in snaps]))
    themes = dict(old.themes)
    # The changed campaigns' themes are read again: a renamed theme is announced as a
    # change of its campaigns (handlers/admin/themes.py).
    themes.update(await theme_names({s.theme_id for s in snaps if s.theme_id is not None}))
    # A targeted campaign among the changed ones (before or after) may have a new rule, a
    # rebuilt audience set, or have come or gone: memberships read before are not reused.
    targeted = {x.id for x in old.targeted} | {x.id for x in snaps if x.targeted}
    audience_version = version if targeted & changed else old.audience_version
    return FeedIndex(old.built_at, version, kept + snaps, participants, old.stores, themes, audience_version)


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
