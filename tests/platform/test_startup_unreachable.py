"""Start-up with the database and Redis unreachable: the server says once what is
unreachable, stays not ready (``/readyz`` 503), retries with backoff logging one line per
attempt and no traceback, and becomes ready when the dependency comes back."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.infra import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _readyz(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return resp.status, await resp.json()


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` for up to a minute (a loaded 2-core machine is slow to start)."""
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_unreachable_database_and_redis_at_start_up(tmp_path: Path) -> None:
    port, redis_port, pg_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "REDIS_", "DATABASE_"))},
        "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(tmp_path / "data"), "APP_ENV": "development",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "DATABASE_URL": f"postgres://wxc:pg-s3cret@127.0.0.1:{pg_port}/wxc",
        "RUN_WORKERS": "true", "LOG_LEVEL": "INFO",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stderr: list[str] = []

    async def collect() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            stderr.append(line.decode(errors="replace"))

    collector = asyncio.create_task(collect())
    redis = None
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), timeout=90)).decode()
        assert "listening on" in first, (first, "".join(stderr))
        second = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode()
        assert "not ready" in second and "database" in second and "redis" in second, second

        status, body = await _readyz(port)
        assert status == 503
        assert body["error"]["details"]["checks"] == {"database": "failed", "redis": "failed", "claims": "failed"}  # type: ignore[index]
        # A request that needs the database is a 503, not a 500.
        async with aiohttp.ClientSession() as session:
            login = {"username": "root", "password": "whatever-password"}
            async with session.post(f"http://127.0.0.1:{port}/api/v1/admin/auth/login", json=login) as resp:
                assert resp.status == 503, await resp.text()

        async def retried() -> bool:
            return sum("redis still unreachable" in line for line in stderr) >= 2

        await _until("two logged retries of Redis", retried)

        # Redis comes back: the server notices without a restart.
        binary = shutil.which("redis-server")
        assert binary is not None
        redis = await asyncio.create_subprocess_exec(
            binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

        async def redis_ready() -> bool:
            _, body = await _readyz(port)
            checks = body["error"]["details"]["checks"]  # type: ignore[index]
            # Workers start once both are reached: the retry loop, not only /readyz, sees it.
            return checks["redis"] == "ok" and any("redis reachable at" in line for line in stderr)  # type: ignore[index]

        await _until("Redis ready", redis_ready)
        status, _ = await _readyz(port)
        assert status == 503  # the database is still missing
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)
        await asyncio.wait_for(collector, timeout=10)
        if redis is not None:
            redis.terminate()
            await redis.wait()
    log = "".join(stderr)
    assert "Traceback" not in log, log
    assert "pg-s3cret" not in log
    said = [line for line in stderr if "unreachable at" in line]
    assert sum("database unreachable at postgres://wxc:***@127.0.0.1" in line for line in said) == 1, log
    assert sum(f"redis unreachable at redis://127.0.0.1:{redis_port}/0" in line for line in said) == 1, log
    assert sum("database still unreachable (attempt" in line for line in stderr) >= 2, log
    assert any("redis reachable at" in line for line in stderr), log
