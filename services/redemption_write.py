"""The database side of a redemption at the till, in as few trips as each dialect allows.

What the till reads (the voucher, what its coupon and campaign allow, whether the
campaign lists the till's store, the clerk's and the store's names) is one statement
(``read_sql``). Marking the voucher used (a compare-and-set), recording the redemption and
its audit entry must commit together. Through the ORM a redemption was eight database calls
(read, names, begin, three statements, commit), and each costs more Python than the
statement itself; on SQLite every call also holds the one connection's lock across a hop to
the database thread and back to a busy event loop: the lock, not the database, caps
redemptions per second. So ``redeem_once`` reads, lets the caller decide from what it read
(``decide``: the redemption rules, pure Python) and writes:

- on SQLite in ONE hop: one function run on the connection's own thread, ``BEGIN
  IMMEDIATE`` (the write lock first, so the read sees what the write will change) … read …
  decide … compare-and-set, inserts … ``COMMIT``, under tortoise's connection lock so no
  other statement interleaves;
- on PostgreSQL on one pooled connection, asyncpg called directly (tortoise's wrapper
  costs as much Python as the rest): the read, then one statement of data-modifying CTEs
  chained on ``RETURNING`` (atomic on its own; the compare-and-set keeps it exactly once
  although the read ran before it).

``aiosqlite`` offers no public call for running a function on its thread:
``Connection._execute`` and ``_conn`` are used as they are in aiosqlite 0.22 (pinned in
requirements.txt). Nothing outside this module touches them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

import asyncpg
from tortoise import connections, fields
from tortoise.exceptions import IntegrityError, OperationalError

from models.vouchers import Voucher
from services.sql import Dialect, Params, dialect_of


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


@cache
def read_sql(dialect: Dialect) -> str:
    """The till's read of a voucher: its columns, its coupon's rules (``t_…``), its
    campaign's (``c_…``), whether the campaign lists the store (``c_store_listed``), the
    names of the clerk and the store (``n_…``). Parameters: voucher id, store id, staff id."""
    params = Params(dialect)
    voucher, store, staff = params(0), params(0), params(0)
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
    if dialect_of(conn) == "postgres":
        return await _on_postgres(conn, (voucher_id, store_id, staff_id), decide)
    return await _on_sqlite(conn, (voucher_id, store_id, staff_id), decide)


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


async def _on_postgres(conn: Any, read_params: tuple[int, int, int], decide: Decide[T]) -> Outcome[T] | None:
    try:
        async with conn.acquire_connection() as connection:  # one pooled connection for both statements
            row = await connection.fetchrow(read_sql("postgres"), *read_params)
            if row is None:
                return None
            decided, u = decide(_row(row, "postgres"))
            if u is None:
                return Outcome(decided, False, None)
            redemption_id = await connection.fetchval(
                _POSTGRES,
                u.at, u.store_id, u.staff_id, u.voucher_id, u.customer_id, u.campaign_id, u.template_id,
                u.face_value, u.order_ref, u.order_amount, u.idempotency_key, u.actor_kind, u.actor_id,
                u.audit_before, u.audit_after, u.request_id,
            )  # fmt: skip
            return Outcome(decided, True, redemption_id)
    # tortoise's own translation (its execute_query), so callers see the same exceptions on either path.
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(exc) from exc
    except (asyncpg.SyntaxOrAccessError, asyncpg.exceptions.DataError) as exc:
        raise OperationalError(exc) from exc


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


#: One redemption's result from the database thread: (True, its outcome) or (False, what it raised).
_Result = tuple[bool, Any]


def _sqlite_batch(db: sqlite3.Connection, batch: list[tuple[tuple[int, int, int], Decide[Any]]]) -> list[_Result]:
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


#: Redemptions per trip at most: the batch holds the one connection for its duration.
SQLITE_BATCH_MAX = 32


@dataclass(eq=False)
class _Waiting:
    read_params: tuple[int, int, int]
    decide: Decide[Any]
    answer: asyncio.Future[Any]


@dataclass(eq=False)
class _SqliteQueue:
    """Redemptions waiting for one SQLite connection, and the task taking them there."""

    waiting: list[_Waiting] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


#: Per tortoise client (one per open ORM; weak, so a closed app's queue goes with it).
_queues: weakref.WeakKeyDictionary[Any, _SqliteQueue] = weakref.WeakKeyDictionary()


async def _on_sqlite(conn: Any, read_params: tuple[int, int, int], decide: Decide[T]) -> Outcome[T] | None:
    """Group commit: every redemption waiting while a trip is under way goes in the next
    one (one hop to the database thread, one transaction, a savepoint each), so the lock
    and the hop are paid once per batch, not once per redemption (one by one they capped
    SQLite at the rate of hops through a busy event loop)."""
    queue = _queues.get(conn)
    if queue is None:
        queue = _queues[conn] = _SqliteQueue()
    waiting = _Waiting(read_params, decide, asyncio.get_running_loop().create_future())
    queue.waiting.append(waiting)
    if queue.task is None:
        queue.task = asyncio.create_task(_drain(conn, queue))
    ok, value = await waiting.answer
    if ok:
        return value  # type: ignore[no-any-return]
    translated = _translated(value)
    if translated is value:
        raise value
    raise translated from value


async def _drain(conn: Any, queue: _SqliteQueue) -> None:
    """Take the waiting redemptions to the database in batches until none is left.
    Runs as its own task, so a request that is cancelled does not cancel a batch."""
    batch: list[_Waiting] = []
    try:
        while queue.waiting:
            # A request cancelled while waiting is dropped before its redemption is tried.
            pending = [w for w in queue.waiting if not w.answer.done()]
            batch, queue.waiting = pending[:SQLITE_BATCH_MAX], pending[SQLITE_BATCH_MAX:]
            if not batch:
                continue
            async with conn.acquire_connection() as connection:  # tortoise's lock on the one connection
                results = await connection._execute(
                    _sqlite_batch, connection._conn, [(w.read_params, w.decide) for w in batch]
                )
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(result)
            batch = []
    except BaseException as exc:  # the batch as a whole failed: every redemption in it and after it hears
        for waiting in (*batch, *queue.waiting):
            if not waiting.answer.done():
                waiting.answer.set_result((False, exc))
        queue.waiting = []
        if not isinstance(exc, Exception):
            raise
    finally:
        queue.task = None


def _translated(exc: BaseException) -> BaseException:
    """The ORM's own translation, so callers see the same exceptions on either dialect."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(exc)
    if isinstance(exc, sqlite3.OperationalError):
        return OperationalError(exc)
    return exc
