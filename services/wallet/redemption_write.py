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
while one batch is at the database go together in the next (group commit, ``_queued``,
here; each batch is written by its dialect's writer, services/wallet/redemption_batches.py):

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
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError

from services.core import dialect_of
from services.wallet.redemption_batches import postgres_batch, sqlite_batch
from services.wallet.redemption_rows import Decide, Outcome, ReadParams, Result, T, Work, read_sql, row_of


async def read(voucher_id: int, store_id: int, staff_id: int, order_ref: str | None = None) -> dict[str, Any] | None:
    """The till's read alone (a preview, a refusal's details): the row or None."""
    conn = connections.get("default")
    dialect = dialect_of(conn)
    _, rows = await conn.execute_query(read_sql(dialect), [voucher_id, store_id, staff_id, order_ref])
    return row_of(rows[0], dialect) if rows else None


async def redeem_once(
    voucher_id: int, store_id: int, staff_id: int, order_ref: str | None, decide: Decide[T]
) -> Outcome[T] | None:
    """Read the voucher as ``read`` does, let ``decide`` judge it and, if it returns a
    write, mark the voucher used if it is still available and valid at ``use.at``, with its
    redemption and audit rows, atomically. None when there is no such voucher. Raises
    IntegrityError when the idempotency key, or the order reference for this voucher, is
    already taken at this store (nothing written)."""
    conn = connections.get("default")
    run = postgres_batch if dialect_of(conn) == "postgres" else sqlite_batch
    return await _queued(conn, run, (voucher_id, store_id, staff_id, order_ref), decide)


# --------------------------------------------------------------------------- group commit

#: Redemptions per trip at most: a batch holds a connection (SQLite's only one) while it runs.
BATCH_MAX = 32


@dataclass(eq=False)
class _Waiting:
    work: Work
    answer: asyncio.Future[Result]


@dataclass(eq=False)
class _Queue:
    """Redemptions waiting for one database client, and the task taking them there."""

    waiting: list[_Waiting] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


#: Per tortoise client (one per open ORM; weak, so a closed app's queue goes with it).
_queues: weakref.WeakKeyDictionary[Any, _Queue] = weakref.WeakKeyDictionary()

RunBatch = Callable[[Any, list[Work]], Awaitable[list[Result]]]


async def _queued(conn: Any, run: RunBatch, read_params: ReadParams, decide: Decide[T]) -> Outcome[T] | None:
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
        return value
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
