"""Fixtures: real Redis, real SQLite and PostgreSQL, the real app over real HTTP.

Every test that uses the ``database_url`` (directly or through ``client``) runs once per
database backend. ``--db sqlite`` or ``--db postgres`` narrows that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.app import create_app
from server.db import apply_migrations
from server.settings import Settings
from tests.infra import PostgresCluster, RedisClusterServers, RedisServer, free_port

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
BACKENDS = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=[*BACKENDS, "all"], default="all", help="database backend(s) to test")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends = BACKENDS if chosen == "all" else (chosen,)
        metafunc.parametrize("db_backend", backends, scope="session")
    if metafunc.definition.get_closest_marker("both_redis"):
        # The stock scripts must run unchanged on one Redis and on a Redis Cluster.
        metafunc.parametrize("redis_kind", ["redis", "redis-cluster"])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_kind() -> str:
    """Which Redis the app gets: "redis", or "redis-cluster" for tests marked both_redis."""
    return "redis"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the shared test Redis, emptied before each test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def run_in_thread(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on its own loop in a worker thread.

    Session-scoped set-up is first requested from inside a test's running loop, where
    asyncio.run() is refused.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(coro_factory())).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    run_in_thread(lambda: apply_migrations(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: PostgresCluster) -> str:
    async def build() -> None:
        conn = await asyncpg.connect(postgres_cluster.admin_dsn)
        try:
            await conn.execute("CREATE DATABASE wxc_template")
        finally:
            await conn.close()
        await apply_migrations(postgres_cluster.url("wxc_template"))

    run_in_thread(build)
    return "wxc_template"


@pytest.fixture
async def database_url(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (a copy of a template migrated once)."""
    if db_backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "app.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite://{path}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    template_name: str = request.getfixturevalue("postgres_template")
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(cluster.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    finally:
        await conn.close()
    yield cluster.url(name)
    conn = await asyncpg.connect(cluster.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def settings(
    database_url: str, redis_url: str, tmp_path: Path, redis_kind: str, request: pytest.FixtureRequest
) -> Settings:
    if redis_kind == "redis-cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        client = RedisCluster.from_url(cluster.url)
        await client.flushall()
        await client.aclose()
        return _settings(database_url, tmp_path, redis_url=cluster.url, redis_cluster=True)
    return _settings(database_url, tmp_path, redis_url=redis_url)


def _settings(database_url: str, tmp_path: Path, **redis: Any) -> Settings:
    return Settings.from_env(
        env={},
        app_env="test",
        port=free_port(),
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=TEST_SECRET,
        auto_migrate=False,
        # Generous: the emulator answers in the same process, which a loaded CI machine can
        # stall for a second; the timeout tests set their own.
        wechat_timeout=5.0,
        wechat_max_retries=2,
        run_workers=False,
        **redis,
    )


@pytest.fixture
async def client(settings: Settings, redis: Redis) -> AsyncIterator[TestClient]:
    """The real app on a real loopback port (the emulator it mounts is reached over HTTP)."""
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1", port=settings.port)
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def client_with(settings: Settings, redis: Redis) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """Like ``client``, with settings overridden: ``await client_with(review_levels=2)``.
    A second call stops the first app, then starts a new one on the same database and
    Redis (a restart): one app at a time, since the ORM context is per process."""
    opened: list[TestClient] = []

    async def make(**overrides: Any) -> TestClient:
        while opened:
            await opened.pop().close()
        app = create_app(dataclasses.replace(settings, **overrides))
        test_client = TestClient(TestServer(app, host="127.0.0.1", port=settings.port))
        await test_client.start_server()
        opened.append(test_client)
        return test_client

    yield make
    while opened:
        await opened.pop().close()
