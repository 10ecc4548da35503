"""Repairing Redis stock from the database, the source of truth for issued vouchers.

Run after a Redis loss (or whenever counters are in doubt). Each campaign's coupons are
closed in Redis while it runs, so no grab moves a counter mid-rebuild; every claim Redis
already decided is persisted first; then counters are rebuilt from the vouchers table.
Claims that were in Redis and never reached the database are gone with a Redis loss:
that is why production Redis needs the append-only file (README, Deployment).

The customers' exclusivity markers (``services.stock.exclusive``) of each reconciled
campaign with exclusivity links are rebuilt too: every customer who joined it or holds a
voucher of it is marked as taking part (additively; markers of other campaigns stay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from models.campaigns import Campaign, CouponTemplate
from models.participations import Participation
from models.vouchers import Voucher
from services.campaigns import exclusive_ids
from services.core import column, errors
from services.stock.claims import ClaimsWorker
from services.stock.gate import Stock, holders_of
from services.stock.hot import bucket_keys
from services.stock.keys import CampaignKeys

#: Campaigns whose coupons live in Redis.
LIVE = ("scheduled", "active", "paused")
#: Seconds a reconciliation waits, once a hot coupon's buckets are closed, for grabs
#: already between their steps (services.stock.hot) to finish before it counts.
HOT_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class CouponReport:
    """What reconciling one coupon found and changed.

    ``stock_*`` is what Redis had left to grab; ``holder_customers_*`` counts distinct
    customers holding at least one voucher of the coupon (Redis's holders hash before, the
    vouchers table after). ``*_before`` is None when the coupon was not in Redis at all.
    ``holders_corrected`` counts customers whose voucher count Redis had wrong, missing or
    extra (so equal totals with different customers still count as drift).
    """

    coupon_id: int
    campaign_id: int
    issued: int
    stock_before: int | None  # None: the coupon was not in Redis at all
    stock_after: int
    holder_customers_before: int | None
    holder_customers_after: int
    holders_corrected: int

    @property
    def stock_drifted(self) -> bool:
        return self.stock_before != self.stock_after

    @property
    def repaired(self) -> bool:
        """Whether reconciling changed anything Redis had for this coupon."""
        return self.stock_drifted or self.holders_corrected > 0


def _int(value: bytes | str | None) -> int | None:
    return None if value is None else int(value)


def _counts(raw: Mapping[bytes | str, bytes | str]) -> dict[int, int]:
    """A holders hash (customer id -> vouchers) as integers."""
    return {int(customer): int(n) for customer, n in raw.items()}


def _corrected(before: dict[int, int], after: dict[int, int]) -> int:
    """How many customers' voucher counts differ between ``before`` and ``after``."""
    return sum(1 for customer in before.keys() | after.keys() if before.get(customer) != after.get(customer))


async def reconcile(stock: Stock, worker: ClaimsWorker, coupon_id: int | None = None) -> list[CouponReport]:
    if coupon_id is not None:
        template = await CouponTemplate.get_or_none(id=coupon_id)
        if template is None:
            raise errors.NotFound(f"no coupon {coupon_id}")
        campaign_ids = [template.campaign_id]
    else:
        campaign_ids = await column(Campaign.filter(status__in=LIVE), "id")
    reports: list[CouponReport] = []
    for campaign_id in campaign_ids:
        reports += await _reconcile_campaign(stock, worker, campaign_id, coupon_id)
    return reports


async def _reconcile_campaign(
    stock: Stock, worker: ClaimsWorker, campaign_id: int, only: int | None
) -> list[CouponReport]:
    keys = CampaignKeys(campaign_id)
    redis = stock.redis
    templates = await CouponTemplate.filter(campaign_id=campaign_id).order_by("id")
    # Per coupon: its stock in Redis (None: not loaded), its holders hash, and whether
    # Redis had the coupon at all.
    # A hot coupon (services.stock.hot) counts over its buckets: stock summed, holders merged.
    before: dict[int, tuple[int | None, dict[int, int], bool]] = {}
    for template in templates:
        stock_sum: int | None = None
        holders: dict[int, int] = {}
        loaded_any = False
        for bucket in range(template.stock_buckets):
            bk = CampaignKeys(campaign_id, bucket)
            key = bk.coupon(template.id)
            loaded = bool(await redis.exists(key))
            if loaded:
                await redis.hset(key, "state", "reconciling")
                loaded_any = True
            holders.update(_counts(await redis.hgetall(bk.holders(template.id))))
            left = _int(await redis.hget(key, "stock"))
            if left is not None:
                stock_sum = (stock_sum or 0) + left
        before[template.id] = (stock_sum, holders, loaded_any or bool(holders))
    if any(t.stock_buckets > 1 for t in templates):
        # A hot grab is several steps: let those already past the closed check finish
        # (each step is one round trip) before the counters are rebuilt.
        await asyncio.sleep(HOT_SETTLE_SECONDS)
    await worker.drain()
    # Rebuild the whole campaign (its coupons share the budget), from the database.
    extra = [k for t in templates for k in bucket_keys(campaign_id, t.id, t.stock_buckets)]
    # The arms' budget shares too: loading gives every running experiment's arms their
    # shares back from its quotas less the vouchers issued from them (services.stock.arms).
    await redis.delete(
        keys.budget, keys.arm_budget, *(keys.coupon(t.id) for t in templates), *(keys.holders(t.id) for t in templates)
    )
    if extra:
        await redis.delete(*extra)  # other slots: one DEL per slot on a cluster
    await stock.load_campaign(campaign_id)
    await _rebuild_exclusive_marks(stock, campaign_id)
    reports = []
    for template in templates:
        if only is not None and template.id != only:
            continue
        holders_after = await holders_of(template.id)
        after = sum(v or 0 for v in await stock.hot.left(campaign_id, template.id, template.stock_buckets))
        stock_before, holders_before, was_loaded = before[template.id]
        reports.append(
            CouponReport(
                coupon_id=template.id,
                campaign_id=campaign_id,
                issued=sum(holders_after.values()),
                stock_before=stock_before,
                stock_after=after,
                holder_customers_before=len(holders_before) if was_loaded else None,
                holder_customers_after=len(holders_after),
                holders_corrected=_corrected(holders_before, holders_after),
            )
        )
    return reports


async def _rebuild_exclusive_marks(stock: Stock, campaign_id: int) -> int:
    """Mark every customer taking part in this campaign (joined, or holds a voucher), if
    it is exclusive with any other; after the drain, so every claim Redis decided is in
    the vouchers table. Returns how many customers were marked."""
    if not await exclusive_ids(campaign_id):
        return 0
    joined = await Participation.filter(campaign_id=campaign_id).values_list("customer_id", flat=True)
    holding = await Voucher.filter(campaign_id=campaign_id).values_list("customer_id", flat=True)
    return await stock.exclusive.hold(campaign_id, {*joined, *holding})  # type: ignore[arg-type]
