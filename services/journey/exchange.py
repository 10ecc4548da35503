"""Exchanging points for a coupon, as one atomic step.

A coupon is exchangeable when its template has a ``points_price``. In order:

1. A replay: the customer's ``Idempotency-Key`` (or, without one, nothing: every request
   is a new exchange) names an exchange made before; its outcome is answered again and
   nothing changes (the same key for another coupon is ``conflict``).
2. Eligibility, as for joining: the campaign is visible (``not_found``), running and in
   its window (``campaign_not_active``), offered in the mini program and, when targeted,
   to this customer (``not_eligible``), not exclusive with one the customer takes part in
   (``exclusive_conflict``), and the coupon's grab time has come (``grab_not_started``).
3. One database transaction records the exchange as a pending coupon grant (a
   RewardGrant with no participation, ref ``exchange:<customer>:<key hash>``, unique) and
   debits the price from the points ledger under the same ref (a conditional update: the
   balance never goes negative, ``insufficient_points`` otherwise). Both or neither.
4. After the commit the grant is issued through ``lua/grant.lua``, on the same stock,
   per-customer limit, campaign budget and claims stream as a grab. If Redis refuses
   (``coupon_sold_out``, ``coupon_limit_reached``, ``budget_exhausted``) the grant is
   marked refused and the points are given back in one transaction (ledger ref
   ``exchange-refund:...``). If Redis cannot be reached the grant stays pending and the
   reward-grants worker finishes it later (issued, or refused and refunded).

The debit comes before the stock on purpose: points are checked and taken under a row
lock in the database, the coupon under the script's atomicity in Redis, and a refusal is
undone by a refund, so no interleaving of concurrent exchanges spends points twice or
issues a coupon unpaid for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.campaigns import CouponTemplate
from models.journey import PointsEntry, RewardGrant
from services.core import errors, random_token
from services.journey import participation as journey
from services.journey import points
from services.journey.participation import Journey
from services.stock import Claim, CouponCache, CouponInfo

TRIGGER = "exchange"


@dataclass(frozen=True)
class ExchangeResult:
    grant: RewardGrant
    info: CouponInfo
    #: The voucher's claim; None while the grant is pending (Redis unreachable).
    claim: Claim | None
    price: int
    balance: int
    replayed: bool


def exchange_ref(customer_id: int, key: str) -> str:
    # Hashed: an Idempotency-Key may be 64 characters and the ledger's ref holds 80.
    return f"exchange:{customer_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


async def _eligible(j: Journey, template: CouponTemplate, customer_id: int, now: datetime) -> None:
    snap = await journey.visible_snapshot(j, template.campaign_id, now)
    refusal = journey.phase_refusal(snap, now)
    if refusal is not None:
        raise refusal
    if journey.CUSTOMER_CHANNEL not in snap.channels:
        raise errors.NotEligible("the campaign is not offered in the mini program", details={"reason": "channel"})
    if not await journey.in_audience(snap, customer_id):
        raise journey.audience_refusal()
    conflicts = await journey.exclusive_conflicts(j, snap, customer_id)
    if conflicts:
        raise errors.ExclusiveConflict(details={"campaign_ids": conflicts})
    if template.grab_starts_at is not None and now < template.grab_starts_at:
        raise errors.GrabNotStarted(
            details={"server_time": now.isoformat(), "opens_at": template.grab_starts_at.isoformat()}
        )


async def exchange(
    j: Journey, cache: CouponCache, customer_id: int, coupon_id: int, idempotency_key: str | None, now: datetime
) -> ExchangeResult:
    """Exchange points for one voucher of ``coupon_id`` (see the module docstring).
    Raises the refusal as an AppError."""
    ref = exchange_ref(customer_id, idempotency_key or random_token(26))
    first = await RewardGrant.get_or_none(ref=ref)
    if first is not None:
        return await _finish(j, cache, first, coupon_id, replayed=True)
    template = await CouponTemplate.get_or_none(id=coupon_id)
    if template is None:
        raise errors.NotFound(f"no coupon {coupon_id}")
    if template.points_price is None:
        raise errors.CouponNotExchangeable()
    await _eligible(j, template, customer_id, now)
    price = template.points_price
    try:
        async with in_transaction():
            grant = await RewardGrant.create(
                participation_id=None, ref=ref, customer_id=customer_id,
                campaign_id=template.campaign_id,
                template_id=template.id, trigger=TRIGGER,
            )  # fmt: skip
            try:
                await points.add(customer_id, -price, TRIGGER, ref, campaign_id=grant.campaign_id)
            except points.InsufficientPoints:
                balance = await points.balance_of(customer_id)
                raise errors.InsufficientPoints(
                    f"this coupon costs {price} points; you have {balance}",
                    details={"balance": balance, "price": price},
                ) from None
    except IntegrityError:
        # The same Idempotency-Key in a concurrent request: that one recorded the exchange.
        first = await RewardGrant.get_or_none(ref=ref)
        if first is None:
            raise
        return await _finish(j, cache, first, coupon_id, replayed=True)
    await j.rewards.issue_pending([grant.id])
    return await _finish(j, cache, grant, coupon_id, replayed=False)


async def _finish(
    j: Journey, cache: CouponCache, grant: RewardGrant, coupon_id: int, *, replayed: bool
) -> ExchangeResult:
    """The outcome of a recorded exchange: its voucher, or its refusal raised."""
    if grant.template_id != coupon_id:
        raise errors.Conflict("this Idempotency-Key was used for another coupon", details={"field": "Idempotency-Key"})
    if grant.status == "pending" and replayed:
        await j.rewards.issue_pending([grant.id])  # idempotent: the grant's Redis record replays
    grant = await RewardGrant.get(id=grant.id)
    paid = await PointsEntry.get_or_none(ref=grant.ref)
    price = -paid.delta if paid is not None else 0
    balance = await points.balance_of(grant.customer_id)
    if grant.status == "refused":
        raise _refusal(grant.refusal or "", price, balance)
    info = await cache.get(grant.template_id)
    claim = None
    if grant.status == "issued":
        found = await j.rewards.claim_of(grant)
        if found is not None:
            claim_id, code, at_ms = found
            claim = Claim(claim_id, code, datetime.fromtimestamp(at_ms / 1000, UTC), replayed=replayed)
    return ExchangeResult(grant=grant, info=info, claim=claim, price=price, balance=balance, replayed=replayed)


def _refusal(reason: str, price: int, balance: int) -> errors.AppError:
    details = {"refunded_points": price, "balance": balance}
    if reason == "sold_out":
        return errors.CouponSoldOut(details=details)
    if reason == "limit":
        return errors.CouponLimitReached(details=details)
    if reason == "budget":
        return errors.BudgetExhausted(details=details)
    return errors.NotFound("the coupon no longer exists", details=details)
