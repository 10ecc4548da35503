"""The embedded redis-server belongs to one server at a time: a killed server leaves no
orphan, an orphan left anyway is stopped before a new one starts on the same
append-only directory, and a redis-server that dies while the server runs is restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from server.embedded_redis import start_embedded_redis
from server.settings import SettingsError
from tests.infra import free_port

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


def _redis_servers_on(redis_dir: Path) -> list[int]:
    """The pids of redis-servers working in ``redis_dir`` (redis-server rewrites its
    command line, but it changes directory to its ``--dir``)."""
    target = str(redis_dir.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server" and os.readlink(entry / "cwd") == target:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in pids if _alive(pid)]


async def _gone(pid: int, seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.1)):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_kill_9_of_the_server_leaves_no_redis_server(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "REDIS_", "DATABASE_"))},
        "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(tmp_path / "data"), "APP_ENV": "development",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    redis_pid = None
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(900):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        [redis_pid] = _redis_servers_on(tmp_path / "data" / "redis")
        proc.kill()
        await proc.wait()
        assert await _gone(redis_pid), "the embedded redis-server outlived its killed server"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if redis_pid is not None and _alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


async def test_an_orphan_is_stopped_and_a_dead_one_restarted(tmp_path: Path) -> None:
    first = await start_embedded_redis(tmp_path)
    second = None
    try:
        client = Redis.from_url(first.url)
        await client.set("stock:1", "42")
        await client.aclose()
        # While the first owns DATA_DIR/redis, nobody else starts one there.
        with pytest.raises(SettingsError, match="in use by another server"):
            await start_embedded_redis(tmp_path)
        # Its server dies without stopping it (kill -9 releases the lock; the child
        # survives here because this test process, its parent, lives on).
        assert first.lock is not None
        first.lock.close()
        first.lock = None
        second = await start_embedded_redis(tmp_path)
        await asyncio.wait_for(first.process.wait(), timeout=15)  # the orphan was stopped
        client = Redis.from_url(second.url)
        try:
            assert await client.get("stock:1") == b"42"  # its append-only file was flushed and reloaded
            second.watch()
            second.process.kill()  # dies while the server runs
            for _ in range(300):
                if second.restarts == 1:
                    break
                await asyncio.sleep(0.1)
            assert second.restarts == 1
            # Same port, same data: a new connection (as a pool makes after a drop) finds it.
            await client.aclose()
            client = Redis.from_url(second.url)
            assert await client.get("stock:1") == b"42"
        finally:
            await client.aclose()
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
    assert not (tmp_path / "redis" / "owner.json").exists()
