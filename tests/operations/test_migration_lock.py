"""Two servers starting on a fresh database at once take turns with the migrations (a
lock: ``flock`` beside a SQLite file, an advisory lock on PostgreSQL) instead of both
creating the first table (``table audit_log already exists``)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.infra import PostgresCluster
from tests.operations.procs import ROOT, server_env

pytestmark = pytest.mark.timeout(600)


async def _migrate_at_once(database_url: str, count: int = 3) -> list[tuple[int, str]]:
    env = server_env(DATABASE_URL=database_url)
    command = [sys.executable, "-m", "server", "migrate"]
    pipe, merged = asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT
    processes = [
        await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env, stdout=pipe, stderr=merged)
        for _ in range(count)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))
    return [(p.returncode or 0, out.decode()) for p, (out, _) in zip(processes, outputs, strict=True)]


async def _tables_sqlite(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0])


async def test_fresh_sqlite_migrated_by_three_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "app.sqlite3"
    results = await _migrate_at_once(f"sqlite://{path}")
    for code, output in results:
        assert code == 0, output
        assert "migrations applied" in output
    assert await _tables_sqlite(path) > 20


async def test_fresh_postgres_migrated_by_three_processes_at_once(postgres_cluster: PostgresCluster) -> None:
    name = "fresh_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(postgres_cluster.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        results = await _migrate_at_once(postgres_cluster.url(name))
        for code, output in results:
            assert code == 0, output
            assert "already exists" not in output
        conn = await asyncpg.connect(postgres_cluster.url(name))
        try:
            tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        finally:
            await conn.close()
        assert tables > 20
    finally:
        admin = await asyncpg.connect(postgres_cluster.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
