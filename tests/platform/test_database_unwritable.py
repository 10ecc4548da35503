"""A database that answers reads but refuses writes (read-only files, a standby, a full
disk): every write is 503 ``database_unavailable``, not a 500 with a traceback, and
``/readyz`` says not ready, because ``SELECT 1`` alone would still pass."""

from __future__ import annotations

import sqlite3
import time

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from tortoise.exceptions import IntegrityError, OperationalError

from server.db import database_unwritable, write_probe
from server.keys import DATABASE, SETTINGS
from tests.helpers import error_of, login_code
from tests.infra import PostgresCluster


async def _set_read_only(client: TestClient, db_backend: str, request: pytest.FixtureRequest, on: bool) -> None:
    """Make the app's database refuse writes (or take them again), as a read-only file
    or a read-only PostgreSQL would. The tests run as root, so file modes cannot do it."""
    connection = client.app[DATABASE].orm.db()  # type: ignore[union-attr]
    if db_backend == "sqlite":
        # One connection per process: the pragma applies to every statement of the app.
        await connection.execute_script(f"PRAGMA query_only = {'ON' if on else 'OFF'}")
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = client.app[SETTINGS].database_url.rsplit("/", 1)[-1]
    admin = await asyncpg.connect(cluster.admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
    finally:
        await admin.close()
    # The setting applies to new sessions: make the pool open new ones.
    await connection._pool.expire_connections()


async def _login(client: TestClient, openid: str) -> tuple[int, dict[str, object]]:
    code = await login_code(client, openid)  # the emulator keeps its codes in memory
    resp = await client.post("/api/v1/auth/wechat/login", json={"code": code})
    return resp.status, await resp.json()


async def test_read_only_database_is_503_and_not_ready(
    client: TestClient, db_backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    status, _ = await _login(client, "o_before")
    assert status == 200
    await _set_read_only(client, db_backend, request, on=True)
    try:
        # A new customer is a write (and so is a returning one's session).
        resp = await client.post("/api/v1/auth/wechat/login", json={"code": await login_code(client, "o_during")})
        assert resp.status == 503, await resp.text()
        assert (await error_of(resp))["code"] == "database_unavailable"
        assert not any(r.exc_info for r in caplog.records if r.name == "wxcampaign.errors")

        resp = await client.get("/readyz")
        assert resp.status == 503, await resp.text()
        error = await error_of(resp)
        assert error["code"] == "not_ready"
        assert error["details"]["checks"] == {"database": "failed", "redis": "ok", "claims": "ok"}
    finally:
        await _set_read_only(client, db_backend, request, on=False)
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    status, _ = await _login(client, "o_after")
    assert status == 200


async def test_write_probe_is_as_cheap_as_select_1(client: TestClient) -> None:
    """The readiness probe runs every few seconds per process: it must cost about what
    ``SELECT 1`` does (it writes no row, so there is no commit record to flush)."""
    connection = client.app[DATABASE].orm.db()  # type: ignore[union-attr]
    url = client.app[SETTINGS].database_url
    rounds = 200

    async def timed(probe: object) -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            if probe == "select":
                await connection.execute_query("SELECT 1")
            else:
                await write_probe(connection, url)
        return (time.perf_counter() - started) / rounds

    await timed("write")  # warm up
    select_1 = min([await timed("select") for _ in range(3)])
    probe = min([await timed("write") for _ in range(3)])
    # Generous for a loaded 2-core machine; measured here: see docs/operations.md.
    assert probe < max(5 * select_1, 0.002), (probe, select_1)


def test_unwritable_is_told_from_an_ordinary_failure() -> None:
    def sqlite_error(code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError("x")
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert database_unwritable(OperationalError(sqlite_error(sqlite3.SQLITE_READONLY)))
    assert database_unwritable(OperationalError(sqlite_error(sqlite3.SQLITE_FULL)))
    assert database_unwritable(OperationalError(sqlite_error(sqlite3.SQLITE_IOERR | (4 << 8))))  # an extended code
    assert database_unwritable(asyncpg.DiskFullError("no space left on device"))
    assert database_unwritable(asyncpg.ReadOnlySQLTransactionError("read-only"))
    try:
        raise asyncpg.ReadOnlySQLTransactionError("read-only")
    except asyncpg.PostgresError as exc:
        wrapped = OperationalError(str(exc))
        wrapped.__cause__ = exc
    assert database_unwritable(wrapped)
    assert not database_unwritable(OperationalError(sqlite_error(sqlite3.SQLITE_ERROR)))  # a bad statement
    assert not database_unwritable(IntegrityError("UNIQUE constraint failed"))
    assert not database_unwritable(RuntimeError("a bug"))
