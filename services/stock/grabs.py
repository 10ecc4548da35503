"""A customer grabbing a coupon: eligibility from cached data, then the atomic script."""

from __future__ import annotations

from datetime import UTC, datetime

from models.participations import Participation
from models.vouchers import Voucher
from services.core import errors
from services.core.orm import column
from services.stock.coupon_cache import CouponCache, CouponInfo
from services.stock.gate import Claim, GrabPolicy, Stock

#: Campaign states whose coupons are in Redis; the script decides the exact window.
GRABBABLE = frozenset({"scheduled", "active"})


async def _exclusive_conflicts(info: CouponInfo, customer_id: int, stock: Stock) -> list[int]:
    """Campaigns exclusive with this one the customer already takes part in: joined, holds
    a persisted voucher of, or grabbed from moments ago (not yet persisted). Only
    campaigns with exclusivity links pay for these look-ups."""
    others = info.exclusive_with
    joined = await column(Participation.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id")
    held = await column(Voucher.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id")
    recent = await stock.recent_campaigns(customer_id, set(others))
    return sorted({*joined, *held, *recent})


async def grab(
    cache: CouponCache,
    stock: Stock,
    coupon_id: int,
    customer_id: int,
    idempotency_key: str | None,
    policy: GrabPolicy,
) -> tuple[CouponInfo, Claim]:
    info = await cache.get(coupon_id)
    if info.reward_only:
        raise errors.NotEligible("this coupon is a challenge's reward", details={"reason": "reward_only"})
    if info.campaign_status not in GRABBABLE:
        raise errors.CampaignNotActive(details={"status": info.campaign_status})
    if info.exclusive_with:
        conflicts = await _exclusive_conflicts(info, customer_id, stock)
        if conflicts:
            raise errors.ExclusiveConflict(details={"campaign_ids": conflicts})
    claim = await stock.grab(info, customer_id, idempotency_key, policy, datetime.now(UTC))
    return info, claim
