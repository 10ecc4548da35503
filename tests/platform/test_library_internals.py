"""The private parts of libraries that kept overrides rely on (issue 13), checked so that
an upgrade which moves them fails here, loudly, instead of in production.

Each override stays only because it measured at least 10% of CPU per request on its path
against the plain library (the numbers are in the module that holds it). The versions
below are the ones reviewed; requirements.txt pins them. Upgrading one means: read the
library's change for the attributes checked here, re-run the module's measurement
(``bench.overrides`` / ``bench.redeem --plain`` / ``bench.feed --plain``), then update the
version here.
"""

from __future__ import annotations

import inspect
import sqlite3
from importlib.metadata import version
from pathlib import Path

import aiosqlite
import pytest
from tortoise import Tortoise, connections

from server.db import orm_config

#: The versions whose internals were reviewed for the overrides (requirements.txt).
REVIEWED = {"aiosqlite": "0.22.1", "tortoise-orm": "1.1.9", "redis": "8.1.0"}


@pytest.mark.parametrize("package", sorted(REVIEWED))
def test_the_installed_versions_are_the_reviewed_ones(package: str) -> None:
    assert version(package) == REVIEWED[package], (
        f"{package} {version(package)} is installed, but the overrides relying on its internals were reviewed "
        f"against {REVIEWED[package]}: review them (see this module's docstring) before upgrading"
    )


def test_aiosqlite_runs_a_function_on_its_thread() -> None:
    """services/wallet/redemption_write.py runs a whole redemption batch on the database
    thread: ``await connection._execute(fn, connection._conn, batch)``."""
    execute = getattr(aiosqlite.Connection, "_execute", None)
    assert execute is not None, "aiosqlite.Connection._execute is gone: redemption_write._sqlite_batch needs it"
    assert inspect.iscoroutinefunction(execute), "aiosqlite.Connection._execute is no longer a coroutine function"
    parameters = list(inspect.signature(execute).parameters.values())
    assert [p.name for p in parameters[:2]] == ["self", "fn"], parameters
    assert {p.kind for p in parameters[2:]} == {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property), (
        "aiosqlite.Connection._conn is no longer a property: redemption_write._sqlite_batch needs it"
    )


async def test_tortoise_hands_out_the_aiosqlite_connection(tmp_path: Path) -> None:
    """What ``_sqlite_batch`` does, for real: tortoise's SQLite client yields an
    ``aiosqlite.Connection`` under its lock; its ``_conn`` is the sqlite3 connection, and
    ``_execute`` runs a function with it on the database thread."""
    await Tortoise.init(config=orm_config(f"sqlite://{tmp_path}/internals.sqlite3"))
    try:
        async with connections.get("default").acquire_connection() as connection:
            assert isinstance(connection, aiosqlite.Connection)
            assert isinstance(connection._conn, sqlite3.Connection)

            def run(db: sqlite3.Connection, value: int) -> tuple[int, bool]:
                return db.execute("SELECT ?", (value,)).fetchone()[0], db.in_transaction

            assert await connection._execute(run, connection._conn, 42) == (42, False)
    finally:
        await Tortoise.close_connections()


def test_redis_pool_internals_the_bounded_pool_uses() -> None:
    """server/redis_pool.py hands connections out of ``ConnectionPool``'s own lists."""
    from redis.asyncio.connection import ConnectionPool

    pool = ConnectionPool()
    assert isinstance(pool._available_connections, list)
    assert isinstance(pool._in_use_connections, set)
    assert callable(pool.get_available_connection) and not inspect.iscoroutinefunction(pool.get_available_connection)
    assert inspect.iscoroutinefunction(pool.ensure_connection)
    assert list(inspect.signature(pool.ensure_connection).parameters) == ["connection"]
