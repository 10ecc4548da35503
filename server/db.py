"""Database configuration, migrations, and the ORM's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path, PurePath
from typing import Any

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as migrate_api

from models import MODEL_MODULES


async def keep_session(connection: Any) -> None:
    """asyncpg's pool ``reset``: nothing to undo. By default the pool sends ``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` whenever a connection goes
    back, one more round trip per query made outside a transaction (tortoise takes a
    pooled connection per statement). This application never changes session state (no
    SET, LISTEN, advisory locks or held cursors); asyncpg still rolls back an open
    transaction and drops listeners itself before calling this."""


def orm_config(database_url: str) -> dict[str, Any]:
    """The tortoise config for one database URL (also used by the `tortoise` CLI via TORTOISE_ORM)."""
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    if database_url.startswith("sqlite://") and "synchronous=" not in database_url:
        # WAL (tortoise's default) with synchronous=NORMAL: a commit no longer waits for an
        # fsync (a power cut may lose the last commits, never corrupt the file); with
        # every commit serialised on one connection, FULL caps writes at the disk's fsync
        # rate. Give ?synchronous=FULL in DATABASE_URL to trade that back.
        database_url += ("&" if "?" in database_url else "?") + "synchronous=NORMAL"
    connection: str | dict[str, Any] = database_url
    if database_url.startswith("postgres://"):
        connection = expand_db_url(database_url)
        connection["credentials"].setdefault("reset", keep_session)
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


#: The PostgreSQL advisory lock key migrations run under (any constant shared by every
#: process of this application: "wxcampaign migrate" as a 63-bit number).
MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"wxcampaign migrate").digest()[:8], "big") >> 1


async def apply_migrations(database_url: str) -> None:
    """Bring the schema to the newest migration. Idempotent; safe to run at every start,
    from any number of processes at once: they take turns under a lock (an advisory lock
    on PostgreSQL, an ``flock`` on a file beside a SQLite database), and each one after
    the first finds nothing left to apply. Without it two processes starting on a fresh
    database both create the first table (``table audit_log already exists``)."""
    async with _migration_lock(database_url):
        config = orm_config(database_url)
        async with TortoiseContext() as ctx:
            await ctx.init(config=config, init_connections=False)
            try:
                await migrate_api(config=config)
            finally:
                await ctx.close_connections()


@contextlib.asynccontextmanager
async def _migration_lock(database_url: str) -> AsyncIterator[None]:
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://").split("?", 1)[0]
        if path == ":memory:":  # private to this process: nobody to race
            yield
            return
        lock_path = Path(path + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:  # noqa: ASYNC230 -- opening a local lock file: microseconds
            # Blocking: waits in a thread while another process migrates (the kernel
            # releases the lock however that process ends).
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return
    dsn = "postgres://" + database_url.split("://", 1)[1]
    connection = await asyncpg.connect(dsn)
    try:
        # Session-level: held until unlocked or the connection closes (a crash frees it).
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            yield
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await connection.close()


async def open_orm(database_url: str) -> TortoiseContext:
    """Open the ORM for this process. Close it with ``close_connections()``.

    The context is made the process-wide fallback so request handlers (which run in tasks
    that do not inherit the start-up task's context variables) find it. One ORM context
    per process: the tests open and close one app at a time.
    """
    # Tortoise caches generated INSERT/DELETE SQL per (connection name, table) for the
    # whole process, whatever the dialect: a process that opens SQLite and then
    # PostgreSQL (the test suite does) would send "?" placeholders to PostgreSQL.
    EXECUTOR_CACHE.clear()
    ctx = TortoiseContext()
    with ctx:  # init resolves connections through the current context
        await ctx.init(config=orm_config(database_url), _enable_global_fallback=True)
    return ctx


#: SQLite's primary result codes for a database that cannot take a write: a read-only
#: file (or ``PRAGMA query_only``), a full disk, an I/O error, a file it cannot open.
_SQLITE_UNWRITABLE = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)
#: PostgreSQL's: a read-only transaction (a standby, ``default_transaction_read_only``),
#: insufficient resources (class 53: disk full, out of memory, too many connections),
#: operator intervention (class 57: shutting down, cannot connect now).
_POSTGRES_UNWRITABLE: tuple[type[BaseException], ...] = (
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
)


def database_unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database cannot take writes at all,
    rather than that one statement was wrong: a 503 for the client, not a 500.

    Tortoise wraps driver errors in its own (``OperationalError(driver_error)``, with or
    without ``from``), so the cause, the context and the first argument are looked at.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _SQLITE_UNWRITABLE:
                return True
        if isinstance(current, _POSTGRES_UNWRITABLE):
            return True
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(a for a in current.args[:1] if isinstance(a, BaseException))
    return False


#: Below this much free space on a SQLite file's filesystem the database is not ready:
#: the next page it appends to its WAL may not fit.
SQLITE_MIN_FREE_BYTES = 1 << 20


async def write_probe(connection: Any, database_url: str) -> None:
    """Raise unless the database takes writes; change nothing.

    An ``UPDATE`` that matches no row: SQLite must take its write lock for it and
    PostgreSQL refuses it in a read-only transaction (a standby, a read-only database),
    yet it writes no row, so it is as cheap as ``SELECT 1`` (no commit record, no fsync).
    A full disk only shows when pages are written, so for a SQLite file the free space of
    its filesystem is checked too (PostgreSQL's disk is not visible from here; its writes
    then fail with 503 ``database_unavailable``). ``connection`` is a tortoise client.
    """
    await connection.execute_query("UPDATE stores SET id = id WHERE id < 0")
    if database_url.startswith("sqlite://"):
        path = database_url.removeprefix("sqlite://").split("?", 1)[0]
        if path != ":memory:":
            # One statvfs call: microseconds, not worth a thread.
            stats = os.statvfs(PurePath(path).parent)
            if stats.f_bavail * stats.f_frsize < SQLITE_MIN_FREE_BYTES:
                raise OSError(f"less than {SQLITE_MIN_FREE_BYTES} bytes free beside {path}")
