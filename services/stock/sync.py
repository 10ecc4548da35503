"""Coupons follow their campaign into Redis: loaded when it is published or starts,
paused, reopened and closed with it. Hot coupons' buckets are swept (services.stock.hot)."""

from __future__ import annotations

from models.campaigns import CouponTemplate
from services.stock.gate import Stock

#: Statuses in which a campaign's coupons must be in Redis (the script enforces the
#: exact opening second, so a published campaign's coupons are loaded ahead of time).
_LOAD = frozenset({"scheduled", "active"})
#: Campaigns whose hot coupons the periodic sweep looks at.
_SWEPT = ("scheduled", "active", "paused")


async def after_transition(stock: Stock, campaign_id: int, status: str) -> None:
    """Call after a campaign's status changed (and committed)."""
    if status in _LOAD:
        await stock.load_campaign(campaign_id)
        await stock.set_state(campaign_id, status)
    elif status in ("paused", "ended", "archived"):
        await stock.set_state(campaign_id, status)
        # Nothing is grabbed now: what is left of a hot coupon becomes one figure.
        await stock.sweep(campaign_id)
    if status == "archived":
        await stock.unregister_stream(campaign_id)


async def sweep_hot_coupons(stock: Stock) -> int:
    """The periodic sweep: each loaded hot coupon of a live campaign with a bucket run
    dry (the sale's end is near, what is left is small) or a campaign not open has its
    extra buckets emptied into bucket 0. Returns how many units moved. Safe to run in
    several processes at once (each unit is taken out of its bucket atomically)."""
    rows = await CouponTemplate.filter(stock_buckets__gt=1, campaign__status__in=_SWEPT).values_list(
        "id", "campaign_id", "stock_buckets", "campaign__status"
    )
    moved = 0
    for template_id, campaign_id, buckets, status in rows:
        left = await stock.hot.left(int(campaign_id), int(template_id), int(buckets))
        if left[0] is None:
            continue  # not loaded
        extra = [v or 0 for v in left[1:]]
        if status == "paused" or not all(extra) or left[0] == 0:
            if any(extra):
                moved += await stock.hot.sweep(int(campaign_id), int(template_id), int(buckets))
    return moved
