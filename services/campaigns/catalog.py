"""What the customer side knows about a campaign: an immutable snapshot, loaded in a few
queries and cached in the process for a moment, so customer routes do not query the
database per campaign per request. Also: phases, languages, and goal windows.

The cache is per process with a short TTL (CATALOG_TTL_SECONDS): an admin's edit shows
within that time in every process, and at once in the process that made it when the
handler calls ``forget``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from models.campaigns import Campaign, CampaignStore, CouponTemplate, ExclusivityLink
from services.core import CouponFace, face_of, urls_of

#: Seconds a cached snapshot is trusted.
CATALOG_TTL_SECONDS = 2.0
#: States a customer may see (a scheduled one only from its visible_from).
CUSTOMER_VISIBLE = frozenset({"scheduled", "active", "paused", "ended"})
#: Types that grant their rewards on join (no goal): points and badge, and for offers
#: one voucher of each coupon (a welcome coupon). Challenges grant on completion.
GRANT_ON_JOIN = frozenset({"offer", "event", "referral"})
COUPONS_ON_JOIN = frozenset({"offer"})


#: Where a visible campaign is in its life, as customers see it.
Phase = Literal["teaser", "running", "paused", "ended"]


@dataclass(frozen=True, kw_only=True)
class CouponSnapshot(CouponFace):
    id: int
    total_stock: int
    per_user_limit: int
    grab_starts_at: datetime | None
    validity_kind: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    points_price: int | None = None


@dataclass(frozen=True)
class CampaignSnapshot:
    id: int
    type: str
    status: str
    visibility: str
    audience_rule: dict[str, Any] | None
    content: dict[str, dict[str, Any]]
    default_language: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    theme_id: int | None
    banner_media_id: int | None
    poster_media_id: int | None
    visible_from: datetime | None
    starts_at: datetime
    ends_at: datetime
    redeem_until: datetime | None
    channels: tuple[str, ...]
    store_ids: frozenset[int] | None  # None: every store
    participant_cap: int | None
    goal_metric: str | None
    goal_target: int | None
    goal_window_days: int | None
    reward_points: int
    reward_badge: str | None
    coupons: tuple[CouponSnapshot, ...]
    exclusive_with: frozenset[int]
    #: "claw_back" or "keep" (services.campaigns.spec.RefundPolicy).
    refund_policy: str = "claw_back"
    #: fen; None: no budget cap (what is left is live in Redis, services.core.budget_key).
    budget_limit: int | None = None
    #: bargain and assist campaigns: their BargainSpec as JSON (services/campaigns/spec.py).
    bargain: Mapping[str, Any] | None = None
    #: red_packet campaigns: their RedPacketSpec as JSON.
    red_packet: Mapping[str, Any] | None = None
    #: Public URLs of the banner and poster (services.core.media_url), looked up with the
    #: snapshot so that customer routes derive none per request.
    banner_url: str | None = None
    poster_url: str | None = None
    #: media id -> URL of every image the campaign names (banner, poster, badge icons).
    media_urls: Mapping[int, str] = field(default_factory=dict)
    #: A group_buy's rules (services.campaigns.spec.GroupSpec as JSON); None for other types.
    group_spec: Mapping[str, Any] | None = None

    @property
    def targeted(self) -> bool:
        return self.visibility == "targeted" and self.audience_rule is not None

    @property
    def shown_from(self) -> datetime:
        return self.visible_from or self.starts_at

    def phase(self, now: datetime) -> Phase | None:
        """``teaser``, ``running``, ``paused``, ``ended``, or None when customers may not
        see it (drafts, review, archived, or before visible_from)."""
        if self.status not in CUSTOMER_VISIBLE or now < self.shown_from:
            return None
        if self.status == "ended" or now >= self.ends_at:
            return "ended"
        if self.status == "paused":
            return "paused"
        if self.status == "scheduled" or now < self.starts_at:
            return "teaser"
        return "running"

    def badge_face(self, language: str) -> tuple[str | None, int | None, str | None]:
        """The reward badge as ``language`` reads it: (display name, icon media id, icon
        URL); the name falls back to the badge's key, and each part to the default
        language's. All None without a reward badge. Precondition: ``language`` is one of
        the content's languages (``pick_language``) or absent from it."""
        if not self.reward_badge:
            return None, None, None
        texts = self.content.get(language) or {}
        fallback = self.content.get(self.default_language) or {}
        name = texts.get("badge_name") or fallback.get("badge_name") or self.reward_badge
        icon = texts.get("badge_icon_media_id") or fallback.get("badge_icon_media_id")
        icon_id = int(icon) if isinstance(icon, int) else None
        return str(name), icon_id, self.media_urls.get(icon_id) if icon_id is not None else None

    def grants_on_join(self) -> bool:
        return self.goal_metric is None and self.type in GRANT_ON_JOIN

    def join_coupons(self) -> tuple[CouponSnapshot, ...]:
        return self.coupons if self.goal_metric is None and self.type in COUPONS_ON_JOIN else ()

    def reward_coupons(self) -> tuple[CouponSnapshot, ...]:
        """Coupons granted when the goal is reached: a challenge's coupons, and a
        bargain's or an assist's when it is claimed."""
        return self.coupons if self.goal_metric is not None or self.type in ("bargain", "assist") else ()

    def deadline(self, joined_at: datetime) -> datetime:
        """When a participant's goal window closes: the campaign's end, or earlier with
        goal_window_days counted from joining."""
        if self.goal_window_days:
            return min(self.ends_at, joined_at + timedelta(days=self.goal_window_days))
        return self.ends_at

    def counts(self, joined_at: datetime, occurred_at: datetime) -> bool:
        """Whether activity at ``occurred_at`` counts for a participant who joined at
        ``joined_at``: from the campaign's start until the participant's deadline. (Only
        events that arrive while joined are applied: a purchase made just before joining
        and uploaded after it counts, history before joining is not replayed.)"""
        return self.starts_at <= occurred_at < self.deadline(joined_at)

    def in_scope(self, store_id: int | None, categories: list[str] | tuple[str, ...] = ()) -> bool:
        """Whether activity at a store, in categories, is within the campaign's scope:
        its stores (when it has a list and the event names a store), and its categories
        (when both name some, they must share one)."""
        if self.store_ids is not None and store_id is not None and store_id not in self.store_ids:
            return False
        return not (self.categories and categories and not set(self.categories) & set(categories))


def _coupon(t: CouponTemplate) -> CouponSnapshot:
    return CouponSnapshot(
        id=t.id, **face_of(t, title=dict(t.title or {})), total_stock=t.total_stock, per_user_limit=t.per_user_limit,
        grab_starts_at=t.grab_starts_at, validity_kind=t.validity_kind, valid_from=t.valid_from,
        valid_until=t.valid_until, valid_days=t.valid_days, points_price=t.points_price,
    )  # fmt: skip


def _media_ids(campaigns: list[Campaign]) -> list[int]:
    """The images these campaigns name: banner, poster, and each language's badge icon."""
    ids: list[int] = []
    for c in campaigns:
        ids += [i for i in (c.banner_media_id, c.poster_media_id) if i is not None]
        for texts in (c.content or {}).values():
            icon = (texts or {}).get("badge_icon_media_id")
            if isinstance(icon, int):
                ids.append(icon)
    return ids


async def load_snapshots(campaigns: list[Campaign]) -> list[CampaignSnapshot]:
    """Snapshots of these campaigns in five queries, whatever their number (the fifth:
    the URLs of their images)."""
    ids = [c.id for c in campaigns]
    if not ids:
        return []
    coupons: dict[int, list[CouponSnapshot]] = {}
    for t in await CouponTemplate.filter(campaign_id__in=ids).order_by("id"):
        coupons.setdefault(t.campaign_id, []).append(_coupon(t))
    stores: dict[int, set[int]] = {}
    for campaign_id, store_id in await CampaignStore.filter(campaign_id__in=ids).values_list("campaign_id", "store_id"):
        stores.setdefault(campaign_id, set()).add(store_id)
    exclusive: dict[int, set[int]] = {}
    links = await ExclusivityLink.filter(campaign_low_id__in=ids).values_list("campaign_low_id", "campaign_high_id")
    links += await ExclusivityLink.filter(campaign_high_id__in=ids).values_list("campaign_low_id", "campaign_high_id")
    for low, high in links:
        exclusive.setdefault(low, set()).add(high)
        exclusive.setdefault(high, set()).add(low)
    urls = await urls_of(_media_ids(campaigns))
    out = []
    for c in campaigns:
        own = {i: urls[i] for i in _media_ids([c]) if i in urls}
        snap = CampaignSnapshot(
            id=c.id, type=c.type, status=c.status, visibility=c.visibility, audience_rule=c.audience_rule,
            content=dict(c.content or {}), default_language=c.default_language, tags=tuple(c.tags or ()),
            categories=tuple(c.categories or ()), theme_id=c.theme_id,
            banner_media_id=c.banner_media_id, poster_media_id=c.poster_media_id, visible_from=c.visible_from,
            starts_at=c.starts_at, ends_at=c.ends_at, redeem_until=c.redeem_until, channels=tuple(c.channels or ()),
            store_ids=None if c.all_stores else frozenset(stores.get(c.id, ())), participant_cap=c.participant_cap,
            goal_metric=c.goal_metric if c.goal_target else None, goal_target=c.goal_target,
            goal_window_days=c.goal_window_days, reward_points=c.reward_points, reward_badge=c.reward_badge,
            coupons=tuple(coupons.get(c.id, ())), exclusive_with=frozenset(exclusive.get(c.id, ())),
            refund_policy=c.refund_policy, budget_limit=c.budget_limit, bargain=c.bargain, red_packet=c.red_packet,
            banner_url=own.get(c.banner_media_id) if c.banner_media_id else None,
            poster_url=own.get(c.poster_media_id) if c.poster_media_id else None, media_urls=own,
            group_spec=c.group_spec,
        )  # fmt: skip
        out.append(snap)
    return out


class CampaignCatalog:
    """Per-process cache of campaign snapshots (TTL), by id."""

    def __init__(self, ttl: float = CATALOG_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[int, tuple[float, CampaignSnapshot | None]] = {}

    async def get(self, campaign_id: int) -> CampaignSnapshot | None:
        now = time.monotonic()
        hit = self._entries.get(campaign_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self.get_many([campaign_id])
        return found.get(campaign_id)

    async def get_many(self, campaign_ids: list[int]) -> dict[int, CampaignSnapshot]:
        """Snapshots by id (missing ids are left out), loading the uncached ones together."""
        now = time.monotonic()
        out: dict[int, CampaignSnapshot] = {}
        missing: list[int] = []
        for campaign_id in dict.fromkeys(campaign_ids):
            hit = self._entries.get(campaign_id)
            if hit is not None and hit[0] > now:
                if hit[1] is not None:
                    out[campaign_id] = hit[1]
            else:
                missing.append(campaign_id)
        if missing:
            loaded = {s.id: s for s in await load_snapshots(await Campaign.filter(id__in=missing))}
            for campaign_id in missing:
                snap = loaded.get(campaign_id)
                self._entries[campaign_id] = (now + self._ttl, snap)
                if snap is not None:
                    out[campaign_id] = snap
            if len(self._entries) > 20_000:  # bound memory: drop the expired
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        return out

    def put(self, snapshots: list[CampaignSnapshot]) -> None:
        expires = time.monotonic() + self._ttl
        for snap in snapshots:
            self._entries[snap.id] = (expires, snap)

    def forget(self, campaign_id: int | None = None) -> None:
        if campaign_id is None:
            self._entries.clear()
        else:
            self._entries.pop(campaign_id, None)
