"""Revenue attribution: crediting a POS/CRM purchase to one campaign, at ingestion.

The rule (docs/analytics.md#revenue-attribution), for a purchase event that applies:

1. **Voucher**: a voucher redeemed (and not reversed) on the same order (the same
   ``order_ref``, at the same store when the event names one, by the same customer)
   credits the order to that voucher's campaign; several vouchers on one order: the first
   redeemed (lowest redemption id).
2. **Window**: otherwise, the customer's latest join (``joined_at`` at or before the
   purchase, and the purchase before ``joined_at`` + the window) credits it to that
   campaign; a tie on ``joined_at`` goes to the later participation.
3. Otherwise nothing is attributed.

One attribution per order: the row's ``order_key`` (``<store id or ->:<order_ref>``) is
unique, so the same order posted again (a retry under another external id, a second
integration) or posted concurrently is attributed once, to whichever event committed
first. The row is written in the event's transaction (inside a savepoint, so a duplicate
order rolls back only the attribution). A refunded purchase keeps its row; the reports
leave out rows whose event is refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from models.attribution import Attribution
from models.participations import Participation
from models.redemptions import Redemption
from models.vouchers import Voucher


def order_key(store_id: int | None, order_ref: str) -> str:
    """The unique key of an order: order numbers are the store's (a POS numbers its own)."""
    return f"{store_id if store_id is not None else '-'}:{order_ref}"


@dataclass(frozen=True)
class Credit:
    campaign_id: int
    rule: str
    redemption_id: int | None = None
    participation_id: int | None = None


async def credit_for(
    *, customer_id: int, order_ref: str, store_id: int | None, occurred_at: datetime, window: timedelta
) -> Credit | None:
    """The campaign the rule credits this purchase to, or None."""
    redeemed = Redemption.filter(order_ref=order_ref, customer_id=customer_id, reversed_at__isnull=True)
    if store_id is not None:
        redeemed = redeemed.filter(store_id=store_id)  # the (store, order_ref, voucher) unique index
    else:
        # No store: reach the order through the customer's vouchers (indexed), not a scan
        # of every redemption for the order number.
        redeemed = redeemed.filter(voucher_id__in=Subquery(Voucher.filter(customer_id=customer_id).values("id")))
    first = await redeemed.order_by("id").first().values("id", "campaign_id")
    if first:
        return Credit(int(first["campaign_id"]), "voucher", redemption_id=int(first["id"]))
    if window <= timedelta(0):
        return None
    # joined_at <= occurred_at < joined_at + window, i.e. joined_at in (occurred_at - window, occurred_at].
    joined = (
        await Participation.filter(
            customer_id=customer_id, joined_at__lte=occurred_at, joined_at__gt=occurred_at - window
        )
        .order_by("-joined_at", "-id")
        .first()
        .values("id", "campaign_id")
    )
    if joined:
        return Credit(int(joined["campaign_id"]), "window", participation_id=int(joined["id"]))
    return None


async def attribute(
    *, event_id: int, customer_id: int, order_ref: str | None, store_id: int | None, amount: int,
    occurred_at: datetime, window: timedelta,
) -> Credit | None:  # fmt: skip
    """Attribute a purchase event (see the module docstring); returns the credit written,
    or None (nothing to credit, or the order was attributed before). Precondition: inside
    the event's transaction."""
    if not order_ref:
        return None
    key = order_key(store_id, order_ref)
    if await Attribution.filter(order_key=key).exists():
        return None
    credit = await credit_for(
        customer_id=customer_id, order_ref=order_ref, store_id=store_id, occurred_at=occurred_at, window=window
    )
    if credit is None:
        return None
    try:
        async with in_transaction():  # a savepoint: a concurrent twin's row rolls back only this
            await Attribution.create(
                order_key=key, event_id=event_id, campaign_id=credit.campaign_id, customer_id=customer_id,
                store_id=store_id, amount=amount, rule=credit.rule, redemption_id=credit.redemption_id,
                participation_id=credit.participation_id, occurred_at=occurred_at,
            )  # fmt: skip
    except IntegrityError:
        return None  # the same order attributed by a concurrent event
    return credit
