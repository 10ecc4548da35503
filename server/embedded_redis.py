"""A local redis-server for the embedded mode (no REDIS_URL): started with the server,
stopped with it, its data kept under DATA_DIR/redis.

Ownership of DATA_DIR/redis: one server process at a time holds an exclusive ``flock``
on ``DATA_DIR/redis/owner.lock`` (the kernel releases it however the process ends, even
``kill -9``), and ``owner.json`` records the redis-server it started (pid, port). A
server that takes the lock and finds a recorded redis-server still running (an orphan
of a killed server) shuts it down (``SHUTDOWN``: the append-only file is flushed)
before starting its own, so two redis-servers never write the same append-only
directory. On Linux the child also gets SIGTERM when the server dies
(``PR_SET_PDEATHSIG``), so a killed server leaves no orphan in the first place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from server.settings import SettingsError

log = logging.getLogger("wxcampaign.server")

_LOCK_FILE = "owner.lock"
_OWNER_FILE = "owner.json"
#: Waits between restarts of a redis-server that keeps dying (then the last one, repeated).
_RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class EmbeddedRedis:
    url: str
    process: asyncio.subprocess.Process
    port: int
    args: list[str]
    redis_dir: Path
    #: The open lock file: DATA_DIR/redis is ours while it is open.
    lock: IO[str] | None = None
    restarts: int = 0
    _stopping: bool = False
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)

    def watch(self) -> None:
        """Restart redis-server on the same port if it dies while the server runs (the
        clients reconnect on their next command); requests answer 503 meanwhile."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._restart_when_dead(), name="embedded-redis-watch")

    async def _restart_when_dead(self) -> None:
        failures = 0
        while not self._stopping:
            code = await self.process.wait()
            if self._stopping:
                return
            delay = _RESTART_BACKOFF[min(failures, len(_RESTART_BACKOFF) - 1)]
            log.error(
                "embedded redis-server (pid %d) exited with %s; restarting in %.1f s", self.process.pid, code, delay
            )
            await asyncio.sleep(delay)
            try:
                self.process = await _spawn(self.args)
                await _wait_until_up(self.process, self.url)
            except SettingsError as exc:
                failures += 1
                log.error("embedded redis-server did not restart: %s", exc)
                continue
            failures = 0
            self.restarts += 1
            _record_owner(self.redis_dir, self.process.pid, self.port)
            log.warning("embedded redis-server restarted (pid %d) at %s", self.process.pid, self.url)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.lock is not None:  # still the owner: a clean stop leaves no record behind
            with contextlib.suppress(OSError):
                (self.redis_dir / _OWNER_FILE).unlink()
            self.lock.close()  # releases the flock
            self.lock = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the forked child, before exec: SIGTERM when the server process dies (Linux)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def _spawn(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent
    )


async def _wait_until_up(process: asyncio.subprocess.Process, url: str) -> None:
    client = Redis.from_url(url)
    try:
        for _ in range(200):
            if process.returncode is not None:
                stderr = await process.stderr.read() if process.stderr else b""
                raise SettingsError(f"redis-server exited at start: {stderr.decode(errors='replace')[:500]}")
            with contextlib.suppress(OSError, redis_errors.ConnectionError, redis_errors.BusyLoadingError):
                if await client.ping():
                    return
            await asyncio.sleep(0.05)
        raise SettingsError("redis-server did not answer within 10 s")
    finally:
        await client.aclose()


def _take_ownership(redis_dir: Path) -> IO[str]:
    """The exclusive lock on ``redis_dir``, or SettingsError naming who holds it."""
    lock = (redis_dir / _LOCK_FILE).open("a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise SettingsError(
            f"{redis_dir} is in use by another server (pid {holder}): one embedded Redis per DATA_DIR"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _record_owner(redis_dir: Path, pid: int, port: int) -> None:
    path = redis_dir / _OWNER_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "port": port, "server_pid": os.getpid()}), encoding="utf-8")
    tmp.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_redis_server(pid: int) -> bool:
    """Whether ``pid`` runs redis-server (a recycled pid may be anything else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return sys.platform != "linux" and _alive(pid)  # no /proc: trust the record
    return b"redis-server" in cmdline


async def _stop_orphan(redis_dir: Path) -> None:
    """Shut down the redis-server a previous (killed) server left on ``redis_dir``.
    Precondition: we hold the ownership lock, so no live server owns it."""
    try:
        owner = json.loads((redis_dir / _OWNER_FILE).read_text(encoding="utf-8"))
        pid, port = int(owner["pid"]), int(owner["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return  # no record (a clean stop removes it) or an unreadable one
    if not _alive(pid) or not _is_redis_server(pid):
        return
    log.warning("stopping the embedded redis-server (pid %d, port %d) left running by a previous server", pid, port)
    client = Redis(host="127.0.0.1", port=port, socket_timeout=5.0, socket_connect_timeout=2.0)
    try:
        # SHUTDOWN flushes the append-only file; the connection drops as it exits.
        with contextlib.suppress(redis_errors.RedisError, OSError):
            await client.shutdown()
    finally:
        await client.aclose()
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        for _ in range(100):
            if not _alive(pid):
                return
            await asyncio.sleep(0.05)
    raise SettingsError(f"the redis-server left running on {redis_dir} (pid {pid}) did not stop")


async def start_embedded_redis(data_dir: Path, *, persistent: bool = True) -> EmbeddedRedis:
    """Take ownership of DATA_DIR/redis, stop an orphaned redis-server there, then start
    redis-server on a free loopback port and wait until it answers PING.

    ``persistent`` turns on the append-only file (fsync every second): coupon stock
    lives in Redis, so a restart must not forget it. Raises SettingsError if another
    live server owns DATA_DIR/redis. Call ``watch()`` to restart it should it die.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SettingsError(
            "REDIS_URL is not set and redis-server is not installed "
            "(run ./scripts/serve, which installs it, or apt-get install redis-server)"
        )
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    lock = _take_ownership(redis_dir)
    try:
        await _stop_orphan(redis_dir)
        port = _free_port()
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
            "--save", "", "--daemonize", "no", "--loglevel", "warning", "--logfile", "",
            "--appendonly", "yes" if persistent else "no", "--appendfsync", "everysec",
        ]  # fmt: skip
        process = await _spawn(args)
        url = f"redis://127.0.0.1:{port}/0"
        embedded = EmbeddedRedis(url=url, process=process, port=port, args=args, redis_dir=redis_dir, lock=lock)
    except BaseException:
        lock.close()
        raise
    try:
        await _wait_until_up(process, url)
    except BaseException:
        await embedded.stop()
        raise
    _record_owner(redis_dir, process.pid, port)
    return embedded
