"""The database connection as configured from DATABASE_URL (server/db.py), read back from
the database itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from tortoise import connections

from server.db import open_orm


async def _pragmas(url: str) -> tuple[str, int]:
    ctx = await open_orm(url)
    try:
        conn = connections.get("default")
        _, [mode] = await conn.execute_query("PRAGMA journal_mode")
        _, [sync] = await conn.execute_query("PRAGMA synchronous")
        return mode[0], sync[0]
    finally:
        await ctx.close_connections()


@pytest.mark.parametrize(("suffix", "expected"), [("", 1), ("?synchronous=FULL", 2)])
async def test_sqlite_runs_in_wal_with_synchronous_normal_unless_the_url_says(
    tmp_path: Path, suffix: str, expected: int
) -> None:
    # 1 is NORMAL, 2 is FULL (an fsync per commit: the redemption bench's bottleneck when
    # the default was lost on the way to the driver).
    mode, sync = await _pragmas(f"sqlite://{tmp_path}/app.sqlite3{suffix}")
    assert (mode, sync) == ("wal", expected)
