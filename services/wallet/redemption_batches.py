"""Writing one batch of redemptions, per dialect, in as few trips as each allows (the
group commit of services/wallet/redemption_write.py hands them over):

- SQLite (``sqlite_batch``): ONE hop to the connection's own thread, ``BEGIN
  IMMEDIATE``, then per redemption a savepoint … read … decide … compare-and-set,
  inserts … release (or roll back to it), then ``COMMIT``;
- PostgreSQL (``postgres_batch``): one pooled connection, asyncpg called directly, one
  read of every voucher in the batch, then one statement of data-modifying CTEs writing
  all those to be used.

``aiosqlite`` offers no public call for running a function on its thread:
``Connection._execute`` and ``_conn`` are used as they are in aiosqlite 0.22 (pinned in
requirements.txt). Nothing outside this module touches them.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import Any

import asyncpg

from services.wallet.redemption_rows import (
    Decide,
    Outcome,
    ReadParams,
    Result,
    T,
    VoucherUse,
    Work,
    read_select,
    read_sql,
    row_of,
)

# --------------------------------------------------------------------------- PostgreSQL

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
), ev AS (
    INSERT INTO webhook_events (type, entity, payload, fanned_out, created_at)
    SELECT 'voucher.redeemed', 'voucher:' || v.claim_id, jsonb_build_object('voucher_id', v.claim_id,
        'campaign_id', $6::bigint, 'coupon_id', $7::bigint, 'customer_id', $5::bigint, 'face_value', $8::bigint,
        'redemption_id', red.id, 'store_id', $2::bigint, 'staff_id', $3::bigint, 'order_ref', $9::varchar,
        'order_amount', $10::bigint, 'at', $1::timestamptz), false, $1::timestamptz
    FROM red JOIN vouchers v ON v.id = $4::bigint
    WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.active AND w.events LIKE '%,voucher.redeemed,%')
)
SELECT (SELECT entity_id FROM aud) AS id
"""


@cache
def _postgres_read_many() -> str:
    """``read_sql`` for many (voucher, store, clerk, order) at once, each row with its position ``q_n``."""
    return (
        read_select("q.voucher_id", "q.store_id", "q.staff_id", "q.order_ref")
        .replace("SELECT ", "SELECT q.n AS q_n, ", 1)
        .replace(
            " FROM vouchers v JOIN",
            " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::varchar[])"
            " WITH ORDINALITY AS q(voucher_id, store_id, staff_id, order_ref, n)"
            " JOIN vouchers v ON v.id = q.voucher_id JOIN",
            1,
        )
        .replace(" WHERE v.id = q.voucher_id", "", 1)
    )  # fmt: skip


#: ``_POSTGRES`` for many redemptions of distinct vouchers: one row per voucher used, with
#: its redemption's id (a voucher that was not available any more has none).
_POSTGRES_MANY = """
WITH input AS (
    SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
        $7::bigint[], $8::bigint[], $9::varchar[], $10::bigint[], $11::varchar[], $12::varchar[], $13::bigint[],
        $14::jsonb[], $15::jsonb[], $16::varchar[])
    AS i(at, store_id, staff_id, voucher_id, customer_id, campaign_id, template_id, face_value, order_ref,
        order_amount, idempotency_key, actor_kind, actor_id, before, after, request_id)
), used AS (
    UPDATE vouchers v SET status = 'used', used_at = i.at, used_store_id = i.store_id, used_by_staff_id = i.staff_id
    FROM input i
    WHERE v.id = i.voucher_id AND v.status = 'available' AND v.valid_until > i.at
    RETURNING v.id
), red AS (
    INSERT INTO redemptions (voucher_id, store_id, staff_id, customer_id, campaign_id, template_id, face_value,
        order_ref, order_amount, idempotency_key, created_at)
    SELECT i.voucher_id, i.store_id, i.staff_id, i.customer_id, i.campaign_id, i.template_id, i.face_value,
        i.order_ref, i.order_amount, i.idempotency_key, i.at
    FROM input i JOIN used u ON u.id = i.voucher_id
    RETURNING id, voucher_id
), aud AS (
    INSERT INTO audit_log (actor_kind, actor_id, action, entity_type, entity_id, before, after, request_id,
        created_at)
    SELECT i.actor_kind, i.actor_id, 'voucher.redeem', 'redemption', r.id, i.before, i.after, i.request_id, i.at
    FROM red r JOIN input i ON i.voucher_id = r.voucher_id
), ev AS (
    INSERT INTO webhook_events (type, entity, payload, fanned_out, created_at)
    SELECT 'voucher.redeemed', 'voucher:' || v.claim_id, jsonb_build_object('voucher_id', v.claim_id,
        'campaign_id', i.campaign_id, 'coupon_id', i.template_id, 'customer_id', i.customer_id,
        'face_value', i.face_value, 'redemption_id', r.id, 'store_id', i.store_id, 'staff_id', i.staff_id,
        'order_ref', i.order_ref, 'order_amount', i.order_amount, 'at', i.at), false, i.at
    FROM red r JOIN input i ON i.voucher_id = r.voucher_id JOIN vouchers v ON v.id = r.voucher_id
    WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.active AND w.events LIKE '%,voucher.redeemed,%')
    ORDER BY r.id
)
SELECT voucher_id, id FROM red
"""


def _args(u: VoucherUse) -> tuple[Any, ...]:
    """A write's values in the order of ``_POSTGRES``'s parameters (and ``_POSTGRES_MANY``'s arrays)."""
    return (
        u.at, u.store_id, u.staff_id, u.voucher_id, u.customer_id, u.campaign_id, u.template_id, u.face_value,
        u.order_ref, u.order_amount, u.idempotency_key, u.actor_kind, u.actor_id, u.audit_before, u.audit_after,
        u.request_id,
    )  # fmt: skip


async def _postgres_one(connection: Any, u: VoucherUse) -> Result:
    try:
        return True, await connection.fetchval(_POSTGRES, *_args(u))
    except asyncpg.PostgresError as exc:
        return False, exc


async def postgres_batch(conn: Any, batch: list[Work]) -> list[Result]:
    """On one pooled connection, asyncpg called directly: one statement reads every
    voucher of the batch, ``decide`` judges each, one statement writes those to be used.
    Outside a transaction: the compare-and-set in the write keeps each exactly once
    although the read ran before it. A voucher twice in the batch (retries, two clerks),
    or an order twice at one store (a basket's vouchers, whose campaigns may exclude each
    other): the later ones are read, judged and written one by one after the rest, so
    each read sees what the earlier ones wrote. If the
    batched write fails (a taken key or order_ref fails the whole statement), each of its
    redemptions is written on its own and only the culprit fails."""
    results: list[Result | None] = [None] * len(batch)
    async with conn.acquire_connection() as connection:
        first: dict[int, int] = {}
        orders: set[tuple[int, str]] = set()
        later: list[int] = []
        for index, (read_params, _) in enumerate(batch):
            voucher_id, store_id, _staff, order_ref = read_params
            if voucher_id in first or (order_ref is not None and (store_id, order_ref) in orders):
                later.append(index)
                continue
            first[voucher_id] = index
            if order_ref is not None:
                orders.add((store_id, order_ref))
        indexes = list(first.values())
        rows = await connection.fetch(_postgres_read_many(), *([batch[i][0][k] for i in indexes] for k in range(4)))
        by_position = {row["q_n"]: row for row in rows}
        uses: list[tuple[int, Any, VoucherUse]] = []
        for position, index in enumerate(indexes, start=1):
            row = by_position.get(position)
            if row is None:
                results[index] = (True, None)
                continue
            try:
                decided, u = batch[index][1](row_of(row, "postgres"))
            except Exception as exc:
                results[index] = (False, exc)
                continue
            if u is None:
                results[index] = (True, Outcome(decided, False, None))
            else:
                uses.append((index, decided, u))
        if len(uses) == 1:
            index, decided, u = uses[0]
            ok, value = await _postgres_one(connection, u)
            results[index] = (True, Outcome(decided, True, value)) if ok else (False, value)
        elif uses:
            try:
                columns = [list(column) for column in zip(*(_args(u) for _, _, u in uses), strict=True)]
                written = dict(await connection.fetch(_POSTGRES_MANY, *columns))
            except asyncpg.IntegrityConstraintViolationError:
                written = None
            for index, decided, u in uses:
                if written is not None:
                    results[index] = (True, Outcome(decided, True, written.get(u.voucher_id)))
                    continue
                ok, value = await _postgres_one(connection, u)
                results[index] = (True, Outcome(decided, True, value)) if ok else (False, value)
        for index in later:
            results[index] = await _postgres_single(connection, batch[index])
    return [r if r is not None else (False, RuntimeError("no result")) for r in results]


async def _postgres_single(connection: Any, work: Work) -> Result:
    """One redemption: its read, its judgement, its write."""
    try:
        row = await connection.fetchrow(read_sql("postgres"), *work[0])
        if row is None:
            return True, None
        decided, u = work[1](row_of(row, "postgres"))
    except Exception as exc:
        return False, exc
    if u is None:
        return True, Outcome(decided, False, None)
    ok, value = await _postgres_one(connection, u)
    return (True, Outcome(decided, True, value)) if ok else (False, value)


# --------------------------------------------------------------------------- SQLite

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
#: The webhook outbox's row (services.outbound), in the redemption's transaction, when an
#: active endpoint subscribes to voucher.redeemed.
_SQLITE_EVENT = (
    "INSERT INTO webhook_events (type, entity, payload, fanned_out, created_at) "
    "SELECT 'voucher.redeemed', 'voucher:' || v.claim_id, json_object('voucher_id', v.claim_id, "
    "'campaign_id', ?, 'coupon_id', ?, 'customer_id', ?, 'face_value', ?, 'redemption_id', ?, 'store_id', ?, "
    "'staff_id', ?, 'order_ref', ?, 'order_amount', ?, 'at', ?), 0, ? FROM vouchers v WHERE v.id = ? "
    "AND EXISTS (SELECT 1 FROM webhooks w WHERE w.active AND w.events LIKE '%,voucher.redeemed,%')"
)


def _sqlite_one(db: sqlite3.Connection, read_params: ReadParams, decide: Decide[T]) -> Outcome[T] | None:
    """One redemption inside the open transaction, between a savepoint and its release:
    on any error the caller rolls back to the savepoint (a half-done redemption is
    undone, the others in the batch are not)."""
    row = db.execute(read_sql("sqlite"), read_params).fetchone()
    if row is None:
        return None
    decided, u = decide(row_of(row, "sqlite"))
    if u is None:
        return Outcome(decided, False, None)
    if db.execute(_SQLITE_USE, (u.at, u.store_id, u.staff_id, u.voucher_id, u.at)).rowcount != 1:
        return Outcome(decided, True, None)
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
    at = u.at.isoformat()
    db.execute(
        _SQLITE_EVENT,
        (
            u.campaign_id, u.template_id, u.customer_id, u.face_value, redemption_id, u.store_id, u.staff_id,
            u.order_ref, u.order_amount, at, u.at, u.voucher_id,
        ),
    )  # fmt: skip
    return Outcome(decided, True, redemption_id)


def _sqlite_transaction(db: sqlite3.Connection, batch: list[Work]) -> list[Result]:
    """Runs on the database thread: the redemptions in order, each behind a savepoint, in
    one transaction. The connection is in autocommit mode (tortoise opens it with
    isolation_level=None), so the transaction is explicit. If the commit fails, nothing
    of the batch is written and every redemption in it gets the exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        results: list[Result] = []
        for read_params, decide in batch:
            db.execute("SAVEPOINT till")
            try:
                results.append((True, _sqlite_one(db, read_params, decide)))
            except Exception as exc:  # this redemption's own failure (e.g. its key is taken)
                db.execute("ROLLBACK TO till")
                results.append((False, exc))
            db.execute("RELEASE till")
        db.execute("COMMIT")
        return results
    except BaseException:
        db.execute("ROLLBACK")
        raise


async def sqlite_batch(conn: Any, batch: list[Work]) -> list[Result]:
    """One hop to the database thread for the whole batch, under tortoise's lock on the
    one connection (no other statement interleaves)."""
    async with conn.acquire_connection() as connection:
        return await connection._execute(_sqlite_transaction, connection._conn, batch)
