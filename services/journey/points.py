"""The points ledger: append-only entries, each with a unique ``ref`` (its cause), and a
balance per customer that never goes below zero.

A change is one transaction: a conditional ``UPDATE ... SET balance = balance + d WHERE
balance + d >= 0`` (atomic on SQLite and PostgreSQL: concurrent debits cannot both pass
the check), then the ledger line with the balance after it. The same ``ref`` twice is a
no-op, so a retried event or reward never counts twice.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from models.journey import PointsBalance, PointsEntry
from services import outbound
from services.core import newest_first


class InsufficientPoints(Exception):
    """The balance cannot cover a debit (nothing was changed)."""


async def balance_of(customer_id: int) -> int:
    row = await PointsBalance.get_or_none(customer_id=customer_id)
    return row.balance if row else 0


async def _apply(customer_id: int, delta: int) -> int:
    """Add ``delta`` to the balance unless it would go negative; the new balance.
    Precondition: inside a transaction."""
    for _ in range(3):
        updated = await PointsBalance.filter(customer_id=customer_id, balance__gte=-delta).update(
            balance=F("balance") + delta
        )
        if updated:
            row = await PointsBalance.get(customer_id=customer_id)
            return row.balance
        if await PointsBalance.filter(customer_id=customer_id).exists():
            raise InsufficientPoints
        if delta < 0:
            raise InsufficientPoints
        try:
            async with in_transaction():  # a savepoint: a lost race must not abort the caller
                await PointsBalance.create(customer_id=customer_id, balance=delta)
            return delta
        except IntegrityError:
            continue  # created concurrently: add to it
    raise RuntimeError("could not update the points balance")


async def add(
    customer_id: int, delta: int, reason: str, ref: str, *, campaign_id: int | None = None
) -> PointsEntry | None:
    """Record a change of ``delta`` points for ``ref``; None if ``ref`` was recorded
    before. Raises InsufficientPoints for a debit the balance cannot cover. Runs in its
    own transaction, or a savepoint of the caller's."""
    if delta == 0:
        return None
    if await PointsEntry.filter(ref=ref).exists():
        return None
    try:
        async with in_transaction():
            balance = await _apply(customer_id, delta)
            entry = await PointsEntry.create(
                customer_id=customer_id, delta=delta, balance_after=balance, reason=reason, ref=ref,
                campaign_id=campaign_id,
            )  # fmt: skip
            # The webhook outbox, in the ledger's transaction (services.outbound).
            await outbound.enqueue(
                "points.changed",
                f"customer:{customer_id}",
                {"customer_id": customer_id, "entry_id": entry.id, "delta": delta, "balance": balance,
                 "reason": reason, "ref": ref, "campaign_id": campaign_id, "at": entry.created_at.isoformat()},
            )  # fmt: skip
            return entry
    except IntegrityError:
        if await PointsEntry.filter(ref=ref).exists():
            return None  # the same ref recorded concurrently: the balance change rolled back with it
        raise


async def take_back(customer_id: int, given_ref: str, reason: str, ref: str) -> PointsEntry | None:
    """Reverse the points that ``given_ref`` gave, as far as the balance allows (points
    already spent cannot be taken back: the balance stops at zero). None if nothing was
    given or ``ref`` was recorded before."""
    given = await PointsEntry.get_or_none(ref=given_ref)
    if given is None or given.delta <= 0 or await PointsEntry.filter(ref=ref).exists():
        return None
    async with in_transaction():
        row = await PointsBalance.filter(customer_id=customer_id).select_for_update().first()
        amount = min(given.delta, row.balance if row else 0)
        if amount <= 0:
            return None
        return await add(customer_id, -amount, reason, ref, campaign_id=given.campaign_id)


async def history(customer_id: int, cursor: str | None, limit: int) -> tuple[list[PointsEntry], str | None]:
    return await newest_first(PointsEntry.filter(customer_id=customer_id), cursor, limit)
