"""A customer grabbing a coupon: eligibility from cached data, then the atomic script.

A coupon of a campaign with exclusivity links is grabbed under the customer's
exclusivity marker (``services.stock.exclusive``): the database check below refuses what
is already known, the marker what is in flight at the same moment."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from models.participations import Participation
from models.vouchers import Voucher
from services.core import errors
from services.stock.coupon_cache import CouponCache, CouponInfo
from services.stock.gate import Claim, GrabPolicy, Stock

#: Campaign states whose coupons are in Redis; the script decides the exact window.
GRABBABLE = frozenset({"scheduled", "active"})
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise errors.ValidationFailed(
            "Idempotency-Key: 1-64 characters of A-Z a-z 0-9 _ . : -",
            details={"errors": [{"field": "Idempotency-Key", "message": "invalid", "type": "header"}]},
        )
    return value


async def _exclusive_conflicts(info: CouponInfo, customer_id: int, stock: Stock) -> list[int]:
    """Campaigns exclusive with this one the customer already takes part in: joined, holds
    a persisted voucher of, or grabbed from moments ago (not yet persisted). Only
    campaigns with exclusivity links pay for these look-ups."""
    others = info.exclusive_with
    joined = await Participation.filter(customer_id=customer_id, campaign_id__in=others).values_list(
        "campaign_id", flat=True
    )
    held = await Voucher.filter(customer_id=customer_id, campaign_id__in=others).values_list("campaign_id", flat=True)
    recent = await stock.recent_campaigns(customer_id, set(others))
    return sorted({*joined, *held, *recent})  # type: ignore[misc]


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
        async with stock.exclusive.taking_part(customer_id, info.campaign_id, info.exclusive_with):
            claim = await stock.grab(info, customer_id, idempotency_key, policy, datetime.now(UTC))
        return info, claim
    claim = await stock.grab(info, customer_id, idempotency_key, policy, datetime.now(UTC))
    return info, claim
