"""What a grab needs to know about a coupon, cached in the process for a moment, so the
hot path makes no database round trip per request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.campaigns import Campaign, CouponTemplate
from services import errors
from services.exclusivity import exclusive_ids

#: Seconds a cached coupon is trusted. Admin changes that must act at once (pause, end,
#: stock) also reach Redis directly; this bounds how stale the rest may be.
TTL_SECONDS = 2.0


@dataclass(frozen=True)
class CouponInfo:
    template_id: int
    campaign_id: int
    campaign_status: str
    visibility: str
    targeted: bool
    kind: str
    title: dict[str, str]
    face_value: int
    percent_off: int | None
    min_spend: int
    item_name: str | None
    per_user_limit: int
    opens_at: datetime
    closes_at: datetime
    validity_kind: str
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    exclusive_with: frozenset[int]

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
    campaign = await Campaign.get(id=template.campaign_id)  # type: ignore[attr-defined]
    return CouponInfo(
        template_id=template.id,
        campaign_id=campaign.id,
        campaign_status=campaign.status,
        visibility=campaign.visibility,
        targeted=campaign.visibility == "targeted" and campaign.audience_rule is not None,
        kind=template.kind,
        title=template.title,
        face_value=template.face_value,
        percent_off=template.percent_off,
        min_spend=template.min_spend,
        item_name=template.item_name,
        per_user_limit=template.per_user_limit,
        opens_at=template.grab_starts_at or campaign.starts_at,
        closes_at=campaign.ends_at,
        validity_kind=template.validity_kind,
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        valid_days=template.valid_days,
        exclusive_with=frozenset(await exclusive_ids(campaign.id)),
    )


class CouponCache:
    """Per-process cache of CouponInfo with a short TTL. Not shared: each process asks
    the database at most once per coupon per TTL."""

    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[int, tuple[float, CouponInfo]] = {}

    async def get(self, template_id: int) -> CouponInfo:
        now = time.monotonic()
        hit = self._entries.get(template_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = await load_info(template_id)
        self._entries[template_id] = (now + self._ttl, info)
        if len(self._entries) > 10_000:  # bound memory: drop the expired
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        return info

    def forget_campaign(self, campaign_id: int) -> None:
        self._entries = {k: v for k, v in self._entries.items() if v[1].campaign_id != campaign_id}
