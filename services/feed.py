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

**Cost**: candidates, their stores, participant counts and themes are one per-process
index rebuilt every ``cache_seconds`` (or at once when an admin changes a campaign:
a version counter in Redis); audience membership comes from a Redis set per targeted
campaign rebuilt from its rule every ``audience_ttl`` seconds; a request then costs three
small queries about the customer and two Redis round trips, whatever the number of
campaigns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.functions import Count

from models.campaigns import Campaign, Theme
from models.customers import Customer
from models.journey import IntegrationEvent
from models.participations import Participation
from models.stores import Store
from services import audience, errors
from services.journey_catalog import CampaignSnapshot, load_snapshots, pick_language
from services.stock import AnyRedis
from services.stock_keys import CampaignKeys

#: Redis counter bumped whenever an admin changes a campaign: every process drops its
#: cached campaign data when it sees a new value.
CATALOG_VERSION_KEY = "journey:catalog-version"
#: Days of purchases that make "categories bought".
BEHAVIOUR_DAYS = 90
CUSTOMER_CHANNEL = "miniprogram"
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
    cache_seconds: float = 5.0
    audience_ttl: int = 300


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


# --- geometry -----------------------------------------------------------------------


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine), kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))


# --- the per-process index ----------------------------------------------------------


@dataclass
class FeedIndex:
    built_at: float
    version: int
    campaigns: list[CampaignSnapshot]
    participants: dict[int, int]
    stores: dict[int, tuple[float, float]]  # active stores: id -> (lat, lng)
    themes: dict[int, str]

    @property
    def most_participants(self) -> int:
        return max(self.participants.values(), default=0)


async def build_index(now: datetime, version: int) -> FeedIndex:
    """Every campaign a feed may show, with what ranking needs, in a fixed number of queries."""
    rows = await Campaign.filter(
        status__in=("scheduled", "active"), visibility__in=("public", "targeted"), ends_at__gt=now
    )
    snaps = [s for s in await load_snapshots(rows) if CUSTOMER_CHANNEL in s.channels]
    ids = [s.id for s in snaps]
    participants: dict[int, int] = {}
    if ids:
        counted = (
            await Participation.filter(campaign_id__in=ids)
            .annotate(n=Count("id"))
            .group_by("campaign_id")
            .values_list("campaign_id", "n")
        )
        participants = {int(c): int(n) for c, n in counted}
    stores = {
        int(i): (float(lat), float(lng))
        for i, lat, lng in await Store.filter(is_active=True).values_list("id", "latitude", "longitude")
    }
    theme_ids = {s.theme_id for s in snaps if s.theme_id is not None}
    themes = dict(await Theme.filter(id__in=theme_ids).values_list("id", "name")) if theme_ids else {}
    return FeedIndex(time.monotonic(), version, snaps, participants, stores, themes)  # type: ignore[arg-type]


# --- audience membership --------------------------------------------------------------


@dataclass(frozen=True)
class AudienceKeys:
    campaign_id: int

    @property
    def members(self) -> str:
        return f"{CampaignKeys(self.campaign_id).tag}:feed-audience"

    @property
    def fresh(self) -> str:
        return f"{CampaignKeys(self.campaign_id).tag}:feed-audience:fresh"

    @property
    def building(self) -> str:
        return f"{CampaignKeys(self.campaign_id).tag}:feed-audience:building"

    @property
    def staging(self) -> str:
        return f"{CampaignKeys(self.campaign_id).tag}:feed-audience:staging"


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


async def audience_of(redis: AnyRedis, customer_id: int, targeted: list[CampaignSnapshot], ttl: int) -> set[int]:
    """The targeted campaigns whose audience holds this customer: one pipelined round
    trip, plus a rebuild of the sets found stale (once per ``ttl`` across processes)."""
    if not targeted:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for snap in targeted:
            keys = AudienceKeys(snap.id)
            pipe.exists(keys.fresh)
            pipe.sismember(keys.members, customer_id)
        replies = await pipe.execute()
    found: set[int] = set()
    for index, snap in enumerate(targeted):
        fresh, member = replies[2 * index], replies[2 * index + 1]
        if not fresh:
            rebuilt = await refresh_audience(redis, snap, ttl)
            if rebuilt is not None:
                member = customer_id in rebuilt
        if member:
            found.add(snap.id)
    return found


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


async def viewer(
    customer_id: int, language: str, now: datetime, *, store_id: int | None, lat: float | None, lng: float | None
) -> Viewer:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise errors.InvalidToken("the account is gone")
    bought: set[str] = set()
    since = now - timedelta(days=BEHAVIOUR_DAYS)
    for categories in await IntegrationEvent.filter(
        customer_id=customer_id, type="purchase", status="applied", occurred_at__gte=since
    ).values_list("categories", flat=True):
        bought.update(categories or [])  # type: ignore[arg-type]
    joined = await Participation.filter(customer_id=customer_id).values_list("campaign_id", flat=True)
    location = (lat, lng) if lat is not None and lng is not None else None
    return Viewer(
        customer_id=customer_id, tier=customer.membership_tier, interests=frozenset(customer.interest_tags or []),
        preferred_store_id=customer.preferred_store_id,  # type: ignore[attr-defined]
        bought=frozenset(bought), joined=frozenset(joined), location=location, store_id=store_id,  # type: ignore[arg-type]
        language=language,
    )  # fmt: skip


# --- scoring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
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


def _nearest(snap: CampaignSnapshot, index: FeedIndex, where: tuple[float, float]) -> float | None:
    ids: Iterable[int] = index.stores if snap.store_ids is None else snap.store_ids
    best = None
    for store_id in ids:
        coords = index.stores.get(store_id)
        if coords is not None:
            d = distance_km(where[0], where[1], coords[0], coords[1])
            best = d if best is None or d < best else best
    return best


def rank_one(
    snap: CampaignSnapshot, phase: str, index: FeedIndex, who: Viewer, policy: FeedPolicy, now: datetime,
    targeted_member: bool, where: tuple[float, float] | None, nearest_all: float | None,
) -> Ranked:  # fmt: skip
    lang = who.language
    reasons: list[Reason] = []
    info: list[Reason] = []

    def add(code: str, points: float, text: str) -> None:
        if points:
            reasons.append(Reason(code, text, round(points, 3)))

    if targeted_member:
        tier = who.tier if who.tier in _tiers_in(snap.audience_rule) else None
        tier_name = (_TIERS_ZH.get(tier, tier) if lang == "zh-CN" else tier.capitalize()) if tier else None
        add(
            "audience",
            policy.audience,
            _text(lang, "tier", tier=tier_name) if tier_name else _text(lang, "audience"),
        )
    liked = sorted(set(snap.tags) & who.interests)
    if liked:
        add("interest", policy.interest * min(2, len(liked)) / 2, _text(lang, "interest", tag=liked[0]))
    bought = sorted(set(snap.categories) & who.bought)
    if bought:
        add("behaviour", policy.behaviour, _text(lang, "behaviour", category=bought[0]))
    if who.preferred_store_id is not None and _runs_at(snap, who.preferred_store_id):
        add("store", policy.store, _text(lang, "store"))
    distance = None
    if where is not None:
        distance = nearest_all if snap.store_ids is None else _nearest(snap, index, where)
        if distance is not None and distance <= policy.near_km and policy.near_km > 0:
            km = f"{distance:.1f}"
            add("distance", policy.distance * (1 - distance / policy.near_km), _text(lang, "distance", km=km))
    if phase == "running":
        left = (snap.ends_at - now).total_seconds() / 3600
        window = policy.ending_soon_days * 24
        if 0 < left <= window:
            add("ending", policy.ending * (1 - left / window), _in(lang, "ending", left))
    count = index.participants.get(snap.id, 0)
    most = index.most_participants
    if count and most:
        share = math.log1p(count) / math.log1p(most)
        if share >= 0.5:
            add("popularity", policy.popularity * share, _text(lang, "popularity", n=f"{count:,}"))
        elif policy.popularity:
            reasons.append(Reason("popularity", "", round(policy.popularity * share, 3)))
    joined = snap.id in who.joined
    if joined:
        add("joined", policy.joined, _text(lang, "joined"))
    if phase == "teaser":
        until = (snap.starts_at - now).total_seconds() / 3600
        info.append(Reason("teaser", _in(lang, "teaser", until), 0.0))
    score = round(sum(r.points for r in reasons), 3)
    shown = sorted((r for r in reasons if r.text), key=lambda r: -r.points)
    return Ranked(snap, phase, score, shown + info, joined, distance, count, info)


def rank(index: FeedIndex, who: Viewer, members: set[int], policy: FeedPolicy, now: datetime) -> list[Ranked]:
    """Every campaign this viewer may see, best first."""
    where = who.location
    if where is None and who.store_id is not None:
        where = index.stores.get(who.store_id)
    nearest_all = None
    if where is not None and index.stores:
        nearest_all = min(distance_km(where[0], where[1], lat, lng) for lat, lng in index.stores.values())
    out = []
    for snap in index.campaigns:
        phase = snap.phase(now)
        if phase not in ("teaser", "running"):
            continue
        if snap.targeted and snap.id not in members:
            continue
        if who.store_id is not None and not _runs_at(snap, who.store_id):
            continue
        out.append(rank_one(snap, phase, index, who, policy, now, snap.targeted, where, nearest_all))
    out.sort(key=lambda r: (-r.score, r.snap.ends_at, r.snap.id))
    return out


# --- the runtime ----------------------------------------------------------------------


class Feed:
    """Per-process feed runtime: the index cache and the policy."""

    def __init__(self, redis: AnyRedis, policy: FeedPolicy | None = None) -> None:
        self.redis = redis
        self.policy = policy or FeedPolicy()
        self._index: FeedIndex | None = None
        self._lock = asyncio.Lock()

    async def version(self) -> int:
        return int(await self.redis.get(CATALOG_VERSION_KEY) or 0)

    async def index(self, now: datetime) -> FeedIndex:
        version = await self.version()
        current = self._index
        if self._usable(current, version):
            return current  # type: ignore[return-value]
        async with self._lock:  # one rebuild per process at a time
            current = self._index
            if not self._usable(current, version):
                current = self._index = await build_index(now, version)
            return current  # type: ignore[return-value]

    def _usable(self, index: FeedIndex | None, version: int) -> bool:
        return (
            index is not None
            and index.version == version
            and time.monotonic() - index.built_at < self.policy.cache_seconds
        )

    def forget(self) -> None:
        self._index = None

    async def ranked(
        self, who: Viewer, now: datetime, index: FeedIndex | None = None
    ) -> tuple[list[Ranked], FeedIndex]:
        index = index or await self.index(now)
        targeted = [s for s in index.campaigns if s.targeted]
        members = await audience_of(self.redis, who.customer_id, targeted, self.policy.audience_ttl)
        return rank(index, who, members, self.policy, now), index


async def campaign_changed(redis: AnyRedis, campaign_id: int) -> None:
    """An admin changed a campaign: every process drops its cached campaign data, and a
    targeted campaign's audience set is rebuilt on next use."""
    await redis.incr(CATALOG_VERSION_KEY)
    await redis.delete(AudienceKeys(campaign_id).fresh)


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
