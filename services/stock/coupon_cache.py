"""What a grab needs to know about a coupon, cached in the process for a moment, so the
hot path makes no database round trip per request."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.campaigns import Campaign, CouponTemplate
from services.campaigns import exclusive_ids
from services.core import CouponFace, errors, face_of

#: Seconds a cached coupon is trusted. Admin changes that must act at once (pause, end,
#: stock) also reach Redis directly; this bounds how stale the rest may be.
TTL_SECONDS = 2.0

#: Campaign types whose coupons are only granted as the reward of finishing (a challenge's
#: goal, a bargain or assist claimed, a red packet claimed as a voucher:
#: services/forms/bargain.py), never grabbed.
REWARD_ONLY_TYPES = frozenset({"challenge", "bargain", "assist", "red_packet"})


@dataclass(frozen=True, kw_only=True)
class CouponInfo(CouponFace):
    template_id: int
    campaign_id: int
    campaign_status: str
    visibility: str
    targeted: bool
    per_user_limit: int
    opens_at: datetime
    closes_at: datetime
    validity_kind: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    exclusive_with: frozenset[int]
    #: A challenge's or a bargain's coupons are its completion reward: granted, never grabbed.
    reward_only: bool = False
    #: Redis slots the stock is split over (a hot coupon: services/stock/hot.py); 1: one.
    stock_buckets: int = 1

    def validity(self, grabbed_at: datetime) -> tuple[datetime, datetime]:
        """The window a voucher grabbed at ``grabbed_at`` is usable in."""
        if self.validity_kind == "fixed":
            assert self.valid_from is not None and self.valid_until is not None
            return self.valid_from, self.valid_until
        assert self.valid_days is not None
        return grabbed_at, grabbed_at + timedelta(days=self.valid_days)


async def load_info(template_id: int) -> CouponInfo:
    template = await CouponTemplate.get_or_none(id=template_id)
    if template is None:
        raise errors.NotFound(f"no coupon {template_id}")
    campaign = await Campaign.get(id=template.campaign_id)
    return CouponInfo(
        template_id=template.id,
        campaign_id=campaign.id,
        campaign_status=campaign.status,
        visibility=campaign.visibility,
        targeted=campaign.visibility == "targeted" and campaign.audience_rule is not None,
        **face_of(template),
        per_user_limit=template.per_user_limit,
        opens_at=template.grab_starts_at or campaign.starts_at,
        closes_at=campaign.ends_at,
        validity_kind=template.validity_kind,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        valid_days=template.valid_days,
        exclusive_with=frozenset(await exclusive_ids(campaign.id)),
        reward_only=campaign.type in REWARD_ONLY_TYPES,
        stock_buckets=template.stock_buckets,
    )


class CouponCache:
    """Per-process cache of CouponInfo with a short TTL. Not shared: each process asks
    the database at most once per coupon per TTL.

    One load per coupon at a time (single flight), and a stale entry keeps serving while
    it reloads in the background: without both, every request in flight when an entry
    expires would queue its own database queries (a p99 of a second under a flash sale).
    """

    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[int, tuple[float, CouponInfo]] = {}
        self._loading: dict[int, asyncio.Task[CouponInfo]] = {}

    async def get(self, template_id: int) -> CouponInfo:
        now = time.monotonic()
        hit = self._entries.get(template_id)
        if hit is not None:
            if hit[0] <= now:
                self._reload(template_id)  # serve the stale entry meanwhile
            return hit[1]
        return await asyncio.shield(self._reload(template_id))

    def _reload(self, template_id: int) -> asyncio.Task[CouponInfo]:
        task = self._loading.get(template_id)
        if task is None:
            task = asyncio.ensure_future(self._load(template_id))
            # A background reload's failure surfaces on the next get; mark it retrieved.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._loading[template_id] = task
        return task

    async def _load(self, template_id: int) -> CouponInfo:
        try:
            info = await load_info(template_id)
            now = time.monotonic()
            self._entries[template_id] = (now + self._ttl, info)
            if len(self._entries) > 10_000:  # bound memory: drop the expired
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            return info
        finally:
            self._loading.pop(template_id, None)

    def forget_campaign(self, campaign_id: int) -> None:
        self._entries = {k: v for k, v in self._entries.items() if v[1].campaign_id != campaign_id}
