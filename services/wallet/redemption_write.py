"""The database side of a redemption at the till, in as few trips as each dialect allows.

What the till reads (the voucher, what its coupon and campaign allow, whether the
campaign lists the till's store, the clerk's and the store's names) is one statement
(``read_sql``). Marking the voucher used (a compare-and-set), recording the redemption and
its audit entry must commit together. Through the ORM a redemption was eight database calls
(read, names, begin, three statements, commit), and each costs more Python than the
statement itself; on SQLite every call also holds the one connection's lock across a hop to
the database thread and back to a busy event loop: the lock, not the database, caps
redemptions per second. So ``redeem_once`` reads, lets the caller decide from what it read
(``decide``: the redemption rules, pure Python) and writes, and the redemptions that arrive
while one batch is at the database go together in the next (group commit, ``_queued``):

- on SQLite in ONE hop per batch: one function run on the connection's own thread,
  ``BEGIN IMMEDIATE`` (the write lock first, so each read sees what its write will
  change), then per redemption a savepoint … read … decide … compare-and-set, inserts …
  release (or roll back to it: a failing redemption undoes only itself), then ``COMMIT``,
  under tortoise's connection lock so no other statement interleaves;
- on PostgreSQL on one pooled connection per batch, asyncpg called directly (tortoise's
  wrapper costs as much Python as the rest): one read of every voucher in the batch, then
  one statement of data-modifying CTEs chained on ``RETURNING`` writing all those to be
  used (atomic on its own; the compare-and-set keeps each exactly once although the read
  ran before it).

No answer is given before the batch's write committed.

``aiosqlite`` offers no public call for running a function on its thread:
``Connection._execute`` and ``_conn`` are used as they are in aiosqlite 0.22.1, on the
connection tortoise-orm 1.1.9's SQLite client hands out (both pinned in requirements.txt;
tests/test_library_internals.py fails if either attribute or version changes). Nothing
outside this module touches them.

Why the private call stays (issue 13: an override of library internals must save at least
10% of CPU per request on its path). Measured 2026-12-03 on the shared 2-core machine (load
average 7-10), ``.venv/bin/python -m bench.redeem --vouchers 24000 --seconds 6 --pairs 4
--plain sqlite_batch``: two servers on one SQLite file, redemptions on each in turn, one
with this module as it is, one with the same transaction through aiosqlite's public
coroutines (``await connection.execute(...)`` per statement, a hop to the database thread
each, ``bench/plain.py``). Server CPU per redemption, four pairs: as is 1.054, 1.166, 1.066,
1.085 ms (median 1.076); public API 1.664, 1.913, 1.463, 1.343 ms (median 1.564): the
private call saves 31% (every pair 19-39%). Re-measure with that command before upgrading
either library.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

import asyncpg
from tortoise import connections, fields
from tortoise.exceptions import IntegrityError, OperationalError

from models.vouchers import Voucher
from services.core.sql import Dialect, Params, dialect_of


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


def _read_select(voucher: str, store: str, staff: str) -> str:
    """The till's read for the SQL expressions naming the voucher, the store and the clerk."""
    return (
        "SELECT "
        + ", ".join(f"v.{c}" for c in voucher_columns())
        + ", t.kind AS t_kind, t.title AS t_title, t.percent_off AS t_percent_off, t.min_spend AS t_min_spend,"
        " t.item_name AS t_item_name, t.store_ids AS t_store_ids, t.channels AS t_channels,"
        " c.all_stores AS c_all_stores,"
        f" EXISTS (SELECT 1 FROM campaign_stores cs WHERE cs.campaign_id = c.id AND cs.store_id = {store})"
        " AS c_store_listed,"
        f" (SELECT display_name FROM staff_members WHERE id = {staff}) AS n_staff,"
        f" (SELECT name FROM stores WHERE id = {store}) AS n_store"
        " FROM vouchers v JOIN coupon_templates t ON t.id = v.template_id JOIN campaigns c ON c.id = t.campaign_id"
        f" WHERE v.id = {voucher}"
    )


@cache
def read_sql(dialect: Dialect) -> str:
    """The till's read of a voucher: its columns, its coupon's rules (``t_…``), its
    campaign's (``c_…``), whether the campaign lists the store (``c_store_listed``), the
    names of the clerk and the store (``n_…``). Parameters: voucher id, store id, staff id."""
    params = Params(dialect)
    voucher, store, staff = params(0), params(0), params(0)
    return _read_select(voucher, store, staff)


@cache
def _datetime_columns() -> tuple[str, ...]:
    return tuple(
        f.source_field or name for name, f in Voucher._meta.fields_map.items() if isinstance(f, fields.DatetimeField)
    )


def _row(raw: Any, dialect: Dialect) -> dict[str, Any]:
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


async def read(voucher_id: int, store_id: int, staff_id: int) -> dict[str, Any] | None:
    """The till's read alone (a preview, a refusal's details): the row or None."""
    conn = connections.get("default")
    dialect = dialect_of(conn)
    _, rows = await conn.execute_query(read_sql(dialect), [voucher_id, store_id, staff_id])
    return _row(rows[0], dialect) if rows else None


async def redeem_once(voucher_id: int, store_id: int, staff_id: int, decide: Decide[T]) -> Outcome[T] | None:
    """Read the voucher as ``read`` does, let ``decide`` judge it and, if it returns a
    write, mark the voucher used if it is still available and valid at ``use.at``, with its
    redemption and audit rows, atomically. None when there is no such voucher. Raises
    IntegrityError when the idempotency key or order reference is already taken at this
    store (nothing written)."""
    conn = connections.get("default")
    run = _postgres_batch if dialect_of(conn) == "postgres" else _sqlite_batch
    return await _queued(conn, run, (voucher_id, store_id, staff_id), decide)


# --------------------------------------------------------------------------- group commit

#: A redemption waiting for the database: (voucher id, store id, staff id) and its ``decide``.
_Work = tuple[tuple[int, int, int], Decide[Any]]
#: Its result: (True, its Outcome, or None when there is no such voucher) or (False, what it raised).
_Result = tuple[bool, Any]
#: Redemptions per trip at most: a batch holds a connection (SQLite's only one) while it runs.
BATCH_MAX = 32


@dataclass(eq=False)
class _Waiting:
    work: _Work
    answer: asyncio.Future[_Result]


@dataclass(eq=False)
class _Queue:
    """Redemptions waiting for one database client, and the task taking them there."""

    waiting: list[_Waiting] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


#: Per tortoise client (one per open ORM; weak, so a closed app's queue goes with it).
_queues: weakref.WeakKeyDictionary[Any, _Queue] = weakref.WeakKeyDictionary()

RunBatch = Callable[[Any, list[_Work]], Awaitable[list[_Result]]]


async def _queued(conn: Any, run: RunBatch, read_params: tuple[int, int, int], decide: Decide[T]) -> Outcome[T] | None:
    """Group commit: the redemptions that arrive while a batch is at the database go
    together in the next one, so a trip (SQLite: the connection's lock and a hop to its
    thread and back through a busy event loop; PostgreSQL: a pooled connection and two
    round trips) is paid once per batch, not once per redemption. One by one those trips,
    not the database, capped redemptions per second."""
    queue = _queues.get(conn)
    if queue is None:
        queue = _queues[conn] = _Queue()
    waiting = _Waiting((read_params, decide), asyncio.get_running_loop().create_future())
    queue.waiting.append(waiting)
    if queue.task is None:
        queue.task = asyncio.create_task(_drain(conn, queue, run))
    ok, value = await waiting.answer
    if ok:
        return value  # type: ignore[no-any-return]
    translated = _translated(value)
    if translated is value:
        raise value
    raise translated from value


async def _drain(conn: Any, queue: _Queue, run: RunBatch) -> None:
    """Take the waiting redemptions to the database in batches until none is left. Its
    own task, so a cancelled request does not cancel a batch it is part of."""
    batch: list[_Waiting] = []
    try:
        while queue.waiting:
            # A request cancelled while waiting is dropped before its redemption is tried.
            pending = [w for w in queue.waiting if not w.answer.done()]
            batch, queue.waiting = pending[:BATCH_MAX], pending[BATCH_MAX:]
            if not batch:
                continue
            results = await run(conn, [w.work for w in batch])
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(result)
            batch = []
    except BaseException as exc:  # the batch as a whole failed: each of it and after it hears
        for waiting in (*batch, *queue.waiting):
            if not waiting.answer.done():
                waiting.answer.set_result((False, exc))
        queue.waiting = []
        if not isinstance(exc, Exception):
            raise
    finally:
        queue.task = None


def _translated(exc: BaseException) -> BaseException:
    """The ORM's own translation (its execute_query), so callers see the same exceptions
    on either dialect and on either path."""
    if isinstance(exc, (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)):
        return IntegrityError(exc)
    if isinstance(exc, (sqlite3.OperationalError, asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError)):
        return OperationalError(exc)
    return exc


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
)
SELECT (SELECT entity_id FROM aud) AS id
"""


@cache
def _postgres_read_many() -> str:
    """``read_sql`` for many (voucher, store, clerk) at once, each row with its position ``q_n``."""
    return (
        _read_select("q.voucher_id", "q.store_id", "q.staff_id").replace("SELECT ", "SELECT q.n AS q_n, ", 1)
        .replace(
            " FROM vouchers v JOIN",
            " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])"
            " WITH ORDINALITY AS q(voucher_id, store_id, staff_id, n) JOIN vouchers v ON v.id = q.voucher_id JOIN",
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


async def _postgres_one(connection: Any, u: VoucherUse) -> _Result:
    try:
        return True, await connection.fetchval(_POSTGRES, *_args(u))
    except asyncpg.PostgresError as exc:
        return False, exc


async def _postgres_batch(conn: Any, batch: list[_Work]) -> list[_Result]:
    """On one pooled connection, asyncpg called directly: one statement reads every
    voucher of the batch, ``decide`` judges each, one statement writes those to be used.
    Outside a transaction: the compare-and-set in the write keeps each exactly once
    although the read ran before it. A voucher twice in the batch (retries, two clerks):
    the later copies are read, judged and written one by one after the rest. If the
    batched write fails (a taken key or order_ref fails the whole statement), each of its
    redemptions is written on its own and only the culprit fails."""
    results: list[_Result | None] = [None] * len(batch)
    async with conn.acquire_connection() as connection:
        first: dict[int, int] = {}
        later: list[int] = []
        for index, (read_params, _) in enumerate(batch):
            if read_params[0] in first:
                later.append(index)
            else:
                first[read_params[0]] = index
        indexes = list(first.values())
        rows = await connection.fetch(_postgres_read_many(), *([batch[i][0][k] for i in indexes] for k in range(3)))
        by_position = {row["q_n"]: row for row in rows}
        uses: list[tuple[int, Any, VoucherUse]] = []
        for position, index in enumerate(indexes, start=1):
            row = by_position.get(position)
            if row is None:
                results[index] = (True, None)
                continue
            try:
                decided, u = batch[index][1](_row(row, "postgres"))
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


async def _postgres_single(connection: Any, work: _Work) -> _Result:
    """One redemption: its read, its judgement, its write."""
    try:
        row = await connection.fetchrow(read_sql("postgres"), *work[0])
        if row is None:
            return True, None
        decided, u = work[1](_row(row, "postgres"))
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


def _sqlite_one(db: sqlite3.Connection, read_params: tuple[int, int, int], decide: Decide[T]) -> Outcome[T] | None:
    """One redemption inside the open transaction, between a savepoint and its release:
    on any error the caller rolls back to the savepoint (a half-done redemption is
    undone, the others in the batch are not)."""
    row = db.execute(read_sql("sqlite"), read_params).fetchone()
    if row is None:
        return None
    decided, u = decide(_row(row, "sqlite"))
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
    return Outcome(decided, True, redemption_id)


def _sqlite_transaction(db: sqlite3.Connection, batch: list[_Work]) -> list[_Result]:
    """Runs on the database thread: the redemptions in order, each behind a savepoint, in
    one transaction. The connection is in autocommit mode (tortoise opens it with
    isolation_level=None), so the transaction is explicit. If the commit fails, nothing
    of the batch is written and every redemption in it gets the exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        results: list[_Result] = []
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


async def _sqlite_batch(conn: Any, batch: list[_Work]) -> list[_Result]:
    """One hop to the database thread for the whole batch, under tortoise's lock on the
    one connection (no other statement interleaves)."""
    async with conn.acquire_connection() as connection:
        return await connection._execute(_sqlite_transaction, connection._conn, batch)  # type: ignore[no-any-return]
