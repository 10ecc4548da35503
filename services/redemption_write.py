"""The write of a redemption at the till, one round trip per dialect.

Marking the voucher used (a compare-and-set), recording the redemption and its audit
entry must commit together. Through the ORM that is five database calls (begin, three
statements, commit), and on SQLite every call holds the one connection's lock across a
hop to the database thread and back to a busy event loop: the lock, not the database,
caps redemptions per second. So:

- on PostgreSQL it is one statement, data-modifying CTEs chained on ``RETURNING`` (a
  statement is atomic on its own);
- on SQLite it is one function run on the connection's own thread (``BEGIN … COMMIT``),
  under tortoise's connection lock so no other statement interleaves.

``aiosqlite`` offers no public call for the latter: ``Connection._execute`` and ``_conn``
are used as they are in aiosqlite 0.22 (pinned in requirements.txt).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError

from services.sql import dialect_of


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


async def use_voucher(use: VoucherUse) -> int | None:
    """Mark the voucher used if it is still available and valid at ``use.at``, with its
    redemption and audit rows, atomically. The new redemption's id, or None when the
    voucher was not available any more (nothing written). Raises IntegrityError when the
    idempotency key or order reference is already taken at this store (nothing written)."""
    conn = connections.get("default")
    if dialect_of(conn) == "postgres":
        return await _on_postgres(conn, use)
    return await _on_sqlite(conn, use)


_POSTGRES = """
WITH used AS (
    UPDATE vouchers SET status = 'used', used_at = $1::timestamptz, used_store_id = $2::bigint,
        used_by_staff_id = $3::bigint
    WHERE id = $4::bigint AND status = 'available' AND valid_until > $1::timestamptz
    RETURNING id
), red AS (
    INSERT INTO redemptions (voucher_id, store_id, staff_id, customer_id, campaign_id, template_id, face_value,
        order_ref, order_amount, idempotency_key, created_at)
    SELECT id, $2::bigint, $3::bigint, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::varchar, $10::bigint,
        $11::varchar, $1::timestamptz FROM used
    RETURNING id
), aud AS (
    INSERT INTO audit_log (actor_kind, actor_id, action, entity_type, entity_id, before, after, request_id,
        created_at)
    SELECT $12::varchar, $13::bigint, 'voucher.redeem', 'redemption', id, $14::jsonb, $15::jsonb, $16::varchar,
        $1::timestamptz FROM red
    RETURNING entity_id
)
SELECT (SELECT entity_id FROM aud) AS id
"""


async def _on_postgres(conn: BaseDBAsyncClient, u: VoucherUse) -> int | None:
    _, rows = await conn.execute_query(
        _POSTGRES,
        [
            u.at, u.store_id, u.staff_id, u.voucher_id, u.customer_id, u.campaign_id, u.template_id, u.face_value,
            u.order_ref, u.order_amount, u.idempotency_key, u.actor_kind, u.actor_id, u.audit_before,
            u.audit_after, u.request_id,
        ],
    )  # fmt: skip
    return rows[0]["id"] if rows else None


_SQLITE_USE = (
    "UPDATE vouchers SET status = 'used', used_at = ?, used_store_id = ?, used_by_staff_id = ? "
    "WHERE id = ? AND status = 'available' AND valid_until > ?"
)
_SQLITE_REDEMPTION = (
    "INSERT INTO redemptions (voucher_id, store_id, staff_id, customer_id, campaign_id, template_id, face_value, "
    "order_ref, order_amount, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_AUDIT = (
    "INSERT INTO audit_log (actor_kind, actor_id, action, entity_type, entity_id, before, after, request_id, "
    "created_at) VALUES (?, ?, 'voucher.redeem', 'redemption', ?, ?, ?, ?, ?)"
)


def _sqlite_transaction(db: sqlite3.Connection, u: VoucherUse) -> int | None:
    """Runs on the database thread. The connection is in autocommit mode (tortoise opens
    it with isolation_level=None), so the transaction is explicit."""
    db.execute("BEGIN")
    try:
        if db.execute(_SQLITE_USE, (u.at, u.store_id, u.staff_id, u.voucher_id, u.at)).rowcount != 1:
            db.execute("ROLLBACK")
            return None
        redemption_id = db.execute(
            _SQLITE_REDEMPTION,
            (
                u.voucher_id, u.store_id, u.staff_id, u.customer_id, u.campaign_id, u.template_id, u.face_value,
                u.order_ref, u.order_amount, u.idempotency_key, u.at,
            ),
        ).lastrowid  # fmt: skip
        db.execute(
            _SQLITE_AUDIT,
            (u.actor_kind, u.actor_id, redemption_id, u.audit_before, u.audit_after, u.request_id, u.at),
        )
        db.execute("COMMIT")
        return redemption_id
    except BaseException:
        db.execute("ROLLBACK")
        raise


async def _on_sqlite(conn: Any, u: VoucherUse) -> int | None:
    try:
        async with conn.acquire_connection() as connection:  # tortoise's lock on the one connection
            return await connection._execute(_sqlite_transaction, connection._conn, u)
    # The ORM's own translation, so callers see the same exceptions on either path.
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(exc) from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(exc) from exc
