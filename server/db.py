"""Database configuration, migrations, and the ORM's lifetime."""

from __future__ import annotations

from typing import Any

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


async def apply_migrations(database_url: str) -> None:
    """Bring the schema to the newest migration. Idempotent; safe to run at every start."""
    config = orm_config(database_url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config, init_connections=False)
        try:
            await migrate_api(config=config)
        finally:
            await ctx.close_connections()


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
