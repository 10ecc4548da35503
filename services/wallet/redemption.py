"""Redeeming a voucher at the till, exactly once, and reversing a redemption.

Exactly once: the voucher goes from ``available`` to ``used`` by one conditional UPDATE
(compare-and-set) in the transaction that also writes the redemption row and its audit
entry (services/wallet/redemption_write.py). Of any number of concurrent attempts one
updates the row; the others update nothing and are told when and where it was used.
Retries are recognised by the ``Idempotency-Key`` (unique per store) or the ``order_ref``
with the same voucher (an order carries several vouchers: unique per store and voucher)
and get the first redemption back, changing nothing. Vouchers of mutually exclusive
campaigns do not share an order (``voucher_not_stackable``). What the till may redeem is
services/wallet/redemption_checks.py.

Never log or put into an error message a voucher code or a scanned payload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.audit import AuditEntry
from models.redemptions import Redemption
from models.vouchers import Voucher
from services import outbound
from services.core import Actor, AnyRedis, audit, errors
from services.wallet import redemption_write
from services.wallet.redemption_checks import (
    CodeConfig,
    Scanned,
    Till,
    load_scanned,
    refusal,
    resolve,
    rule_refusal,
    scanned_of,
)
from services.wallet.redemption_lists import RedemptionView, describe, mask_code
from services.wallet.redemption_rows import Decide, Outcome, VoucherUse

# --------------------------------------------------------------------------- redeem


async def _prior(
    store_id: int, idempotency_key: str | None, order_ref: str | None, voucher_id: int | None
) -> Redemption | None:
    """The redemption this request repeats: the one under its Idempotency-Key at the store,
    else this voucher's under its order_ref (an order carries several vouchers)."""
    if idempotency_key is not None:
        found = await Redemption.get_or_none(store_id=store_id, idempotency_key=idempotency_key)
        if found is not None:
            return found
    if order_ref is not None and voucher_id is not None:
        return await Redemption.get_or_none(store_id=store_id, order_ref=order_ref, voucher_id=voucher_id)
    return None


async def _signed_voucher(config: CodeConfig, redis: AnyRedis, payload: str) -> int | None:
    """The voucher a payload names, its age unchecked (a retry may come after the code
    expired), or None if it names none."""
    try:
        return await resolve(config, redis, payload, check_age=False)
    except errors.QrInvalid:
        return None  # e.g. a numeric code long gone


async def _replay(prior: Redemption, config: CodeConfig, redis: AnyRedis, payload: str) -> Redemption:
    """The first answer again, if this retry names the same voucher (its code may have
    expired since: only its signature is checked). Another voucher is a conflict."""
    voucher_id = await _signed_voucher(config, redis, payload)  # None: the key decides
    if voucher_id is not None and voucher_id != prior.voucher_id:
        raise errors.Conflict(
            "this Idempotency-Key was already used at this store for another voucher",
            details={"redemption_id": prior.id},
        )
    return prior


async def redeem(
    config: CodeConfig,
    redis: AnyRedis,
    till: Till,
    actor: Actor,
    payload: str,
    order_amount: int | None,
    order_ref: str | None,
    idempotency_key: str | None,
) -> tuple[RedemptionView, bool]:
    """Redeem the voucher behind ``payload`` at the till's store, exactly once.
    Returns (the redemption, replayed)."""
    if idempotency_key is not None or order_ref is not None:
        signed = await _signed_voucher(config, redis, payload) if order_ref is not None else None
        prior = await _prior(till.store_id, idempotency_key, order_ref, signed)
        if prior is not None:
            [view] = await describe([await _replay(prior, config, redis, payload)])
            return view, True
    voucher_id = await resolve(config, redis, payload)
    now = datetime.now(UTC)
    before, after = _audit_snapshots(voucher_id, till, order_amount, order_ref)

    def decide(row: dict[str, Any]) -> tuple[Scanned, VoucherUse | None]:
        # Pure: on SQLite this runs on the database thread, inside the transaction.
        scanned = scanned_of(row)
        if rule_refusal(scanned, till.store_id, order_amount, now) is not None:
            return scanned, None
        v = scanned.voucher
        return scanned, VoucherUse(
            voucher_id=v.id, store_id=till.store_id, staff_id=till.staff_id,
            customer_id=v.customer_id,
            campaign_id=v.campaign_id, template_id=scanned.template.id, face_value=v.face_value,
            order_ref=order_ref, order_amount=order_amount, idempotency_key=idempotency_key, at=now,
            actor_kind=actor.kind, actor_id=actor.id, request_id=actor.request_id,
            audit_before=before, audit_after=after,
        )  # fmt: skip

    try:
        outcome = await _redeem_once(voucher_id, till, order_ref, decide)
    except IntegrityError:
        # The key or order_ref was taken meanwhile (the whole transaction rolled back).
        prior = await _prior(till.store_id, idempotency_key, order_ref, voucher_id)
        if prior is not None:
            [view] = await describe([await _replay(prior, config, redis, payload)])
            return view, True
        raise
    scanned = outcome.decided
    if outcome.redemption_id is not None:
        return view_of(outcome.redemption_id, scanned, till, order_ref, order_amount, now), False
    if outcome.attempted or scanned.voucher.status == "used":
        # Someone else used the voucher first (before the read, or between the read and the
        # compare-and-set on PostgreSQL). A concurrent retry of this same request may have
        # won: it is then a replay.
        prior = await _prior(till.store_id, idempotency_key, order_ref, voucher_id)
        if prior is not None and prior.voucher_id == voucher_id:
            [view] = await describe([prior])
            return view, True
    if not outcome.attempted:
        raise await refusal(scanned, till.store_id, order_amount, now) or errors.VoucherAlreadyUsed()
    scanned = await load_scanned(voucher_id, till, order_ref)
    lost_to = await refusal(scanned, till.store_id, order_amount, datetime.now(UTC))
    raise lost_to or errors.VoucherAlreadyUsed()


async def _redeem_once(voucher_id: int, till: Till, order_ref: str | None, decide: Decide[Scanned]) -> Outcome[Scanned]:
    """``redemption_write.redeem_once``; VoucherNotFound when the voucher does not exist,
    IntegrityError when the key, or the order_ref for this voucher, is taken (nothing written)."""
    outcome = await redemption_write.redeem_once(voucher_id, till.store_id, till.staff_id, order_ref, decide)
    if outcome is None:
        raise errors.VoucherNotFound()
    return outcome


def _audit_snapshots(
    voucher_id: int, till: Till, order_amount: int | None, order_ref: str | None
) -> tuple[str | None, str | None]:
    """The audit entry's before/after as the database stores them (JSON text), made before
    the trip so the database thread (SQLite) does as little as possible."""
    after = {
        "voucher_status": "used", "voucher_id": voucher_id, "store_id": till.store_id,
        "staff_id": till.staff_id, "order_ref": order_ref, "order_amount": order_amount,
    }  # fmt: skip
    before_d, after_d = audit.diff({"voucher_status": "available"}, after)
    field = AuditEntry._meta.fields_map["after"]
    return field.to_db_value(before_d, AuditEntry), field.to_db_value(after_d, AuditEntry)


# --------------------------------------------------------------------------- reverse


async def reverse(till: Till, actor: Actor, redemption_id: int, reason: str, window_seconds: int) -> Redemption:
    """Undo a redemption: managers of its store, within the window, once. The voucher is
    available again, or expired if its time has passed meanwhile."""
    r = await Redemption.get_or_none(id=redemption_id)
    if r is None:
        raise errors.NotFound("no such redemption")
    if r.store_id != till.store_id or till.role != "manager":
        raise errors.Forbidden("only a manager of the store that redeemed it may reverse a redemption")
    return await _reverse(r, actor, reason, window_seconds, reversed_by_id=till.staff_id)


async def reverse_for_admin(actor: Actor, redemption_id: int, reason: str, window_seconds: int) -> Redemption:
    """Customer service's reversal from the console: a redemption of any store, on the same
    terms as a store manager's (within the window, once). ``reversed_by`` (a staff member)
    stays null; the audit entry names the admin."""
    r = await Redemption.get_or_none(id=redemption_id)
    if r is None:
        raise errors.NotFound("no such redemption")
    return await _reverse(r, actor, reason, window_seconds, reversed_by_id=None)


async def _reverse(
    r: Redemption, actor: Actor, reason: str, window_seconds: int, *, reversed_by_id: int | None
) -> Redemption:
    if r.reversed_at is not None:
        raise errors.AlreadyReversed(details={"reversed_at": r.reversed_at.isoformat()})
    now = datetime.now(UTC)
    deadline = r.created_at + timedelta(seconds=window_seconds)
    if now > deadline:
        raise errors.ReversalWindowPassed(
            details={"redeemed_at": r.created_at.isoformat(), "window_seconds": window_seconds}
        )
    async with in_transaction():
        changed = await Redemption.filter(id=r.id, reversed_at=None).update(
            reversed_at=now, reversed_by_id=reversed_by_id, reverse_reason=reason
        )
        if changed != 1:
            raise errors.AlreadyReversed()
        voucher = await Voucher.get(id=r.voucher_id)
        status = "available" if voucher.valid_until > now else "expired"
        await Voucher.filter(id=voucher.id, status="used").update(
            status=status, used_at=None, used_store_id=None, used_by_staff_id=None
        )
        await audit.record(
            actor, "voucher.redeem.reverse", "redemption", r.id,
            before={"voucher_status": "used", "reversed": False},
            after={"voucher_status": status, "reversed": True, "reason": reason},
        )  # fmt: skip
        # The webhook outbox, in the reversal's transaction (services.outbound).
        await outbound.enqueue(
            "voucher.reversed",
            f"voucher:{voucher.claim_id}",
            outbound.voucher_payload(
                claim_id=voucher.claim_id, campaign_id=voucher.campaign_id, template_id=voucher.template_id,
                customer_id=voucher.customer_id, face_value=voucher.face_value, redemption_id=r.id,
                store_id=r.store_id, reversed_by=reversed_by_id, reason=reason, status=status, at=now.isoformat(),
            ),
        )  # fmt: skip
    return await Redemption.get(id=r.id)


def view_of(
    redemption_id: int,
    scanned: Scanned,
    till: Till,
    order_ref: str | None,
    order_amount: int | None,
    at: datetime,
) -> RedemptionView:
    """A redemption just made as a view, from what redeeming read (names included): no query."""
    v, t = scanned.voucher, scanned.template
    return RedemptionView(
        id=redemption_id, voucher_id=v.claim_id, voucher_code_masked=mask_code(v.code),
        coupon_id=t.id, campaign_id=v.campaign_id, customer_id=v.customer_id,
        title=t.title, kind=t.kind, face_value=v.face_value,
        store_id=till.store_id, store_name=scanned.store_name or "",
        staff_id=till.staff_id, staff_name=scanned.staff_name or "",
        order_ref=order_ref, order_amount=order_amount, created_at=at,
        reversed_at=None, reversed_by=None, reverse_reason=None,
    )  # fmt: skip
