"""Coupons follow their campaign into Redis: loaded when it is published or starts,
paused, reopened and closed with it."""

from __future__ import annotations

from services.stock.gate import Stock

#: Statuses in which a campaign's coupons must be in Redis (the script enforces the
#: exact opening second, so a published campaign's coupons are loaded ahead of time).
_LOAD = frozenset({"scheduled", "active"})


async def after_transition(stock: Stock, campaign_id: int, status: str) -> None:
    """Call after a campaign's status changed (and committed)."""
    if status in _LOAD:
        await stock.load_campaign(campaign_id)
        await stock.set_state(campaign_id, status)
    elif status in ("paused", "ended", "archived"):
        await stock.set_state(campaign_id, status)
    if status == "archived":
        await stock.unregister_stream(campaign_id)
