"""A local redis-server for the embedded mode (no REDIS_URL): started with the server,
stopped with it, its data kept under DATA_DIR/redis."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.settings import SettingsError


@dataclass
class EmbeddedRedis:
    url: str
    process: asyncio.subprocess.Process

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_embedded_redis(data_dir: Path, *, persistent: bool = True) -> EmbeddedRedis:
    """Start redis-server on a free loopback port and wait until it answers PING.

    ``persistent`` turns on the append-only file (fsync every second): coupon stock
    lives in Redis, so a restart must not forget it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SettingsError(
            "REDIS_URL is not set and redis-server is not installed "
            "(run ./scripts/serve, which installs it, or apt-get install redis-server)"
        )
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir.resolve()),
        "--save", "", "--daemonize", "no", "--loglevel", "warning", "--logfile", "",
        "--appendonly", "yes" if persistent else "no", "--appendfsync", "everysec",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    url = f"redis://127.0.0.1:{port}/0"
    embedded = EmbeddedRedis(url=url, process=process)
    client = Redis.from_url(url)
    try:
        for _ in range(200):
            if process.returncode is not None:
                stderr = await process.stderr.read() if process.stderr else b""
                raise SettingsError(f"redis-server exited at start: {stderr.decode(errors='replace')[:500]}")
            with contextlib.suppress(OSError, redis_errors.ConnectionError, redis_errors.BusyLoadingError):
                if await client.ping():
                    return embedded
            await asyncio.sleep(0.05)
        await embedded.stop()
        raise SettingsError("redis-server did not answer within 10 s")
    finally:
        await client.aclose()
