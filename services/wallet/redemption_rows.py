"""What a redemption at the till reads and writes, shared by the group commit
(services/wallet/redemption_write.py) and each dialect's writer
(services/wallet/redemption_batches.py): the till's read as one statement (``read_sql``),
its row as a dict (``row_of``), the write's values (``VoucherUse``), and what the caller's
``decide`` made of it (``Outcome``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from tortoise import fields

from models.vouchers import Voucher
from services.core import Dialect, Params


@dataclass(frozen=True)
class VoucherUse:
    """Everything the write needs; the audit snapshots as the database stores them (JSON text)."""

    voucher_id: int
    store_id: int
    staff_id: int
    customer_id: int
    campaign_id: int
    template_id: int
    face_value: int
    order_ref: str | None
    order_amount: int | None
    idempotency_key: str | None
    at: datetime
    actor_kind: str
    actor_id: int | None
    request_id: str | None
    audit_before: str | None
    audit_after: str | None


T = TypeVar("T")
#: From the row read, what the caller makes of it, and the write to do (None: write nothing).
#: On SQLite it runs on the database thread inside the transaction: pure Python only, no I/O.
Decide = Callable[[dict[str, Any]], tuple[T, VoucherUse | None]]


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What ``decide`` made of the row; ``attempted``: it asked for the write;
    ``redemption_id``: the new redemption (None: nothing written: not asked, or the
    voucher was no longer available when the compare-and-set ran)."""

    decided: T
    attempted: bool
    redemption_id: int | None


@cache
def voucher_columns() -> tuple[str, ...]:
    """The voucher's columns as ``read_sql`` returns them (complete once the ORM is initialised)."""
    return tuple(sorted(set(Voucher._meta.fields_db_projection.values())))


def read_select(voucher: str, store: str, staff: str, order_ref: str) -> str:
    """The till's read for the SQL expressions naming the voucher, the store, the clerk and
    the order (NULL: none)."""
    return (
        "SELECT "
        + ", ".join(f"v.{c}" for c in voucher_columns())
        + ", t.kind AS t_kind, t.title AS t_title, t.percent_off AS t_percent_off, t.min_spend AS t_min_spend,"
        " t.item_name AS t_item_name, t.store_ids AS t_store_ids, t.channels AS t_channels,"
        " c.all_stores AS c_all_stores, c.redeem_until AS c_redeem_until,"
        f" EXISTS (SELECT 1 FROM campaign_stores cs WHERE cs.campaign_id = c.id AND cs.store_id = {store})"
        " AS c_store_listed,"
        f" (SELECT display_name FROM staff_members WHERE id = {staff}) AS n_staff,"
        f" (SELECT name FROM stores WHERE id = {store}) AS n_store,"
        # The store's opening state: a closed store takes no redemptions (store_closed).
        f" (SELECT state FROM stores WHERE id = {store}) AS s_state,"
        # A redemption standing on the same order of a campaign exclusive with this one.
        " (SELECT MIN(r.id) FROM redemptions r JOIN campaign_exclusivity x"
        " ON (x.campaign_low_id = r.campaign_id AND x.campaign_high_id = c.id)"
        " OR (x.campaign_high_id = r.campaign_id AND x.campaign_low_id = c.id)"
        f" WHERE r.store_id = {store} AND r.order_ref = {order_ref} AND r.reversed_at IS NULL"
        " AND r.voucher_id <> v.id) AS o_exclusive_redemption"
        " FROM vouchers v JOIN coupon_templates t ON t.id = v.template_id JOIN campaigns c ON c.id = t.campaign_id"
        f" WHERE v.id = {voucher}"
    )


@cache
def read_sql(dialect: Dialect) -> str:
    """The till's read of a voucher: its columns, its coupon's rules (``t_…``), its
    campaign's (``c_…``: where it runs, when redeeming ends), whether the campaign lists
    the store (``c_store_listed``), the names of the clerk and the store (``n_…``), the
    store's opening state (``s_state``), and a
    standing redemption on the same order of a campaign exclusive with the voucher's
    (``o_exclusive_redemption``). Parameters: voucher id, store id, staff id, order_ref."""
    params = Params(dialect)
    voucher, store, staff, order_ref = params(0), params(0), params(0), params(None)
    return read_select(voucher, store, staff, order_ref)


@cache
def _datetime_columns() -> tuple[str, ...]:
    return tuple(
        f.source_field or name for name, f in Voucher._meta.fields_map.items() if isinstance(f, fields.DatetimeField)
    )


def row_of(raw: Any, dialect: Dialect) -> dict[str, Any]:
    """A row as a dict. SQLite returns datetimes as text, which the ORM's conversion parses
    with a regular expression (a third of the till's model building): text that
    ``datetime.fromisoformat`` reads with its offset is handed over parsed, the ORM then
    only normalises it; anything else is left to the ORM."""
    row = dict(raw)
    if dialect == "sqlite":
        for column in _datetime_columns():
            value = row[column]
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    if (parsed := datetime.fromisoformat(value)).tzinfo is not None:
                        row[column] = parsed
    return row


#: What the till's read is about: (voucher id, store id, staff id, order_ref or None).
ReadParams = tuple[int, int, int, str | None]
#: A redemption waiting for the database: what to read and its ``decide``.
Work = tuple[ReadParams, Decide[Any]]
#: Its result: (True, its Outcome, or None when there is no such voucher) or (False, what it raised).
Result = tuple[bool, Any]
