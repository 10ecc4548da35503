"""Customer service's writes: points adjustments, tiers, voiding a voucher and granting
one by hand. Each is audited with its before and after, in the transaction of the change.

- **Points** go through the ledger (``services.journey.points``): a conditional UPDATE
  that never takes the balance below zero, so concurrent debits cannot overdraw it; a
  debit the balance cannot cover is ``409 insufficient_points``. The entry's reason is
  ``manual``, with the admin's note and id. With an ``Idempotency-Key`` a retry answers
  the first entry.
- **Tiers**: services.activity.tiers, with the admin as the source.
- **Void**: an issued, unused voucher (``available``) becomes ``void`` with a
  compare-and-set on its status, in one transaction with the campaign's ``budget_spent``
  given back and the audit entry: of any number of concurrent voids one wins, the others
  answer ``409 voucher_already_void``. ``stock_returned`` is set in the same step, so
  loading or reconciling the coupon no longer counts the voucher. After the commit the
  winner gives the stock, the customer's place under the per-customer limit and the
  budget back in Redis (services/stock/give_back.lua, once per voucher by a marker).
  Should the process die between the commit and that call, Redis holds one unit too few
  until the coupon is reconciled (never one too many).
- **Grant**: one voucher of a coupon through the grab's stock, per-customer limit and
  budget (services/journey/grant.lua, as rewards are), marked with the admin on its
  claim (``granted_by`` on the voucher the claims worker writes). Refusals are the
  grab's codes: ``coupon_sold_out``, ``coupon_limit_reached``, ``budget_exhausted``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CouponTemplate
from models.journey import PointsEntry
from models.vouchers import Voucher
from services.activity import tiers
from services.core import audit, errors, random_token
from services.journey import Journey, points
from services.support.customers import get_customer, ledger_row, voucher_row

#: Campaign states whose coupons can be granted (their coupons live in Redis).
GRANTABLE = ("scheduled", "active", "paused")


def _admin_id(actor: audit.Actor) -> int:
    if actor.id is None:
        raise errors.Forbidden("customer service acts as an admin")
    return actor.id


# --- points ------------------------------------------------------------------------------


async def adjust_points(
    customer_id: int, delta: int, reason: str, actor: audit.Actor, idempotency_key: str | None = None
) -> tuple[dict[str, Any], int, bool]:
    """Add ``delta`` (negative: take away) points with ``reason``: the ledger entry, the
    balance after it and whether it is a replay of the same Idempotency-Key. Raises
    InsufficientPoints (409) when a debit would take the balance below zero."""
    await get_customer(customer_id)
    admin_id = _admin_id(actor)
    # Hashed: a 64-character key would overflow the ledger's 80-character ref.
    attempt = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32] if idempotency_key else random_token(20)
    ref = f"manual:{admin_id}:{attempt}"
    first = await PointsEntry.get_or_none(ref=ref)
    if first is not None:
        if first.customer_id != customer_id or first.delta != delta:
            raise errors.Conflict(
                "this Idempotency-Key was used for another adjustment", details={"entry_id": first.id}
            )
        return ledger_row(first), await points.balance_of(customer_id), True
    async with in_transaction():
        before = await points.balance_of(customer_id)
        try:
            entry = await points.add(customer_id, delta, "manual", ref)
        except points.InsufficientPoints:
            raise errors.InsufficientPoints(
                "the balance cannot go below zero", details={"balance": before, "delta": delta}
            ) from None
        if entry is None:  # the same key recorded concurrently: answer that one
            first = await PointsEntry.get(ref=ref)
            return ledger_row(first), await points.balance_of(customer_id), True
        await PointsEntry.filter(id=entry.id).update(note=reason, admin_id=admin_id)
        entry.note, entry.admin_id = reason, admin_id
        await audit.record(
            actor, "customer.points", "customer", customer_id,
            {"points_balance": before},
            {"points_balance": entry.balance_after, "delta": delta, "reason": reason, "entry_id": entry.id},
        )  # fmt: skip
    return ledger_row(entry), entry.balance_after, False


# --- tier --------------------------------------------------------------------------------


async def set_tier(journey: Journey, customer_id: int, tier: str, reason: str, actor: audit.Actor) -> tiers.TierOutcome:
    """Set the tier, recorded with this admin as its source (services.activity.tiers)."""
    await get_customer(customer_id)
    source = tiers.TierSource("admin", admin_id=_admin_id(actor))
    return await tiers.change_tier(journey, customer_id, tier, source=source, reason=reason, actor=actor)


# --- void --------------------------------------------------------------------------------


def _not_voidable(v: Voucher, now: datetime) -> errors.AppError:
    if v.status == "void":
        return errors.VoucherAlreadyVoid(details={"voucher_id": v.id, "voided_at": _iso(v.voided_at)})
    if v.status == "used":
        return errors.VoucherAlreadyUsed(details={"voucher_id": v.id, "used_at": _iso(v.used_at)})
    return errors.VoucherExpired(details={"voucher_id": v.id, "valid_until": v.valid_until.isoformat()})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True)
class VoidOutcome:
    voucher: dict[str, Any]
    #: What Redis said: "returned", "dup" or "not_loaded" (nothing loaded to give back to).
    stock: Literal["returned", "dup", "not_loaded"]


async def void_voucher(journey: Journey, voucher_id: int, reason: str, actor: audit.Actor) -> VoidOutcome:
    """Void an issued, unused voucher and give back its stock and budget (see the module
    docstring). Raises VoucherNotFound, or 409 voucher_already_void /
    voucher_already_used / voucher_expired."""
    admin_id = _admin_id(actor)
    v = await Voucher.get_or_none(id=voucher_id)
    if v is None:
        raise errors.VoucherNotFound(f"no voucher {voucher_id}", details={"voucher_id": voucher_id})
    now = datetime.now(UTC)
    if v.status != "available" or v.valid_until <= now:
        raise _not_voidable(v, now)
    async with in_transaction():
        won = await Voucher.filter(id=v.id, status="available").update(
            status="void", voided_at=now, voided_by=admin_id, void_reason=reason, stock_returned=True
        )
        if not won:  # another void, a redemption or the expiry job got there first
            raise _not_voidable(await Voucher.get(id=v.id), now)
        await Campaign.filter(id=v.campaign_id).update(budget_spent=F("budget_spent") - v.face_value)
        await audit.record(
            actor, "voucher.void", "voucher", v.id,
            {"status": "available", "void_reason": None, "stock_returned": False},
            {"status": "void", "void_reason": reason, "stock_returned": True},
        )  # fmt: skip
    stock = await journey.stock.give_back(v)
    return VoidOutcome(voucher_row(await Voucher.get(id=v.id), now), stock)


# --- grant -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantOutcome:
    claim_id: str
    code: str
    coupon_id: int
    campaign_id: int
    granted_at: datetime
    replayed: bool


async def grant_voucher(
    journey: Journey, customer_id: int, coupon_id: int, reason: str, actor: audit.Actor,
    idempotency_key: str | None = None,
) -> GrantOutcome:  # fmt: skip
    """Issue one voucher of ``coupon_id`` to the customer by hand (see the module
    docstring). The voucher reaches the database through the claims worker, marked
    ``granted_by``. Raises UnknownCoupon, CampaignNotActive, or the grab's refusals."""
    await get_customer(customer_id)
    admin_id = _admin_id(actor)
    template = await CouponTemplate.get_or_none(id=coupon_id)
    if template is None:
        raise errors.UnknownCoupon(f"no coupon {coupon_id}", details={"field": "coupon_id"})
    status = (await Campaign.get(id=template.campaign_id)).status
    if status not in GRANTABLE:
        raise errors.CampaignNotActive(details={"status": status})
    key = idempotency_key or random_token(20)
    answer, record, replayed = await journey.rewards.grant_manual(
        campaign_id=template.campaign_id, template_id=template.id, customer_id=customer_id, admin_id=admin_id,
        key=key,
    )  # fmt: skip
    if answer != "ok":
        raise _grant_refusal(answer, template)
    claim_id, code, at = record.split(":")
    granted_at = datetime.fromtimestamp(int(at) / 1000, UTC)
    if not replayed:
        async with in_transaction():
            await audit.record(
                actor, "voucher.grant", "customer", customer_id, None,
                {"claim_id": claim_id, "coupon_id": template.id, "campaign_id": template.campaign_id,
                 "face_value": template.face_value, "reason": reason, "manual_grant": True},
            )  # fmt: skip
    return GrantOutcome(claim_id, code, template.id, template.campaign_id, granted_at, replayed)


def _grant_refusal(answer: str, template: CouponTemplate) -> errors.AppError:
    if answer == "limit":
        return errors.CouponLimitReached(details={"limit": template.per_user_limit})
    if answer == "sold_out":
        return errors.CouponSoldOut()
    if answer == "budget":
        return errors.BudgetExhausted()
    return errors.UnknownCoupon(f"coupon {template.id} cannot be issued ({answer})", details={"field": "coupon_id"})
