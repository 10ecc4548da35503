"""``python -m server --workers N``: N server processes sharing one port.

The parent process does what must happen once per machine, then starts the children
and looks after them:

1. checks that ``HOST:PORT`` can be bound (a taken port is one clear error, not N);
2. starts the embedded redis-server when ``REDIS_URL`` is unset (one for all children,
   which get its URL; the parent restarts it should it die);
3. applies the migrations (``AUTO_MIGRATE``) before any child serves (the children then
   skip them; ``server.db.apply_migrations`` also takes a lock, so even servers started
   apart never race on a fresh database);
4. points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory, so ``GET /metrics`` on any
   child shows every process (server/metrics.py);
5. starts N children (``python -m server --child``), each with its own event loop,
   database pool and Redis connections, each binding the port with ``SO_REUSEPORT``: the
   kernel spreads new connections over them;
6. restarts a child that exits (after a growing pause when it keeps dying; a child that
   exits with status 2, a configuration error, stops everything: a restart would fail
   alike);
7. on SIGTERM or SIGINT sends SIGTERM to every child, which stops accepting, finishes
   its requests and stops its workers (aiohttp's graceful shutdown), waits for them
   (``SHUTDOWN_GRACE_SECONDS``, then SIGKILL), stops the embedded Redis and exits 0.

Background workers need no election here: each child runs them (``RUN_WORKERS``) and
they share their work across processes as separate servers do (the scheduler's passes
under a Redis lock, the claims stream's consumer group, the outbox's compare-and-set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from server import logs
from server.embedded_redis import EmbeddedRedis, _die_with_parent, start_embedded_redis
from server.metrics import MULTIPROC_ENV, mark_process_dead
from server.settings import Settings, SettingsError

log = logging.getLogger("wxcampaign.supervisor")

#: How long children get to finish their requests after SIGTERM before SIGKILL.
SHUTDOWN_GRACE_SECONDS = 30.0
#: Pauses before restarting a child that keeps dying (then the last one, repeated).
_RESTART_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: A child that ran this long before dying was healthy: its restart waits the shortest pause.
_HEALTHY_AFTER_SECONDS = 10.0
#: A child's exit status for a configuration error (as ``python -m server`` exits).
_CONFIG_ERROR = 2


@dataclass
class Child:
    index: int
    process: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    failures: int = 0


def _can_bind(host: str, port: int) -> OSError | None:
    """Whether the children will be able to bind HOST:PORT with SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


class Supervisor:
    """The parent of N server processes (see the module docstring)."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.children: dict[int, Child] = {}
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.embedded: EmbeddedRedis | None = None
        self.metrics_dir: Path | None = None
        self._own_metrics_dir = False
        self.env: dict[str, str] = {}

    async def run(self) -> int:
        settings = self.settings
        problem = _can_bind(settings.host, settings.port)
        if problem is not None:
            print(f"error: cannot listen on {settings.host}:{settings.port}: {problem.strerror}", file=sys.stderr)
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self._prepare()
            print(
                f"wxcampaign: {self.workers} worker processes on http://{settings.host}:{settings.port}"
                f" (parent pid {os.getpid()})",
                flush=True,
            )
            if settings.emulator_enabled:
                log.warning(
                    "the WeChat emulator keeps its users and codes in each process: a login code issued by one"
                    " worker is unknown to the others; with --workers run it alone (python -m"
                    " miniprogram_api.emulator) and set WECHAT_API_BASE, WECHAT_APPID and WECHAT_SECRET"
                )
            for index in range(self.workers):
                await self._start(index)
            watchers = [asyncio.create_task(self._watch(index)) for index in range(self.workers)]
            await self.stopping.wait()
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._stop_children()
        finally:
            await self._cleanup()
        return self.exit_code

    async def _prepare(self) -> None:
        settings = self.settings
        env = dict(os.environ)
        existing = env.get(MULTIPROC_ENV)
        if existing:
            # Given by the operator: stale files of a previous run would add to the counts.
            self.metrics_dir = Path(existing)
            self.metrics_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.metrics_dir.glob("*.db"):
                stale.unlink()
        else:
            self.metrics_dir = Path(tempfile.mkdtemp(prefix="wxcampaign-metrics-"))
            self._own_metrics_dir = True
        env[MULTIPROC_ENV] = str(self.metrics_dir)
        if settings.redis_url is None:
            self.embedded = await start_embedded_redis(settings.data_dir)
            self.embedded.watch()
            env["REDIS_URL"] = self.embedded.url
            log.info("started embedded redis-server at %s for %d workers", self.embedded.url, self.workers)
        if settings.auto_migrate:
            from server.db import apply_migrations

            if settings.database_url.startswith("sqlite://"):
                path = settings.database_url.removeprefix("sqlite://").split("?", 1)[0]
                if path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                await apply_migrations(settings.database_url)
            except Exception as exc:  # unreachable now: each child retries, under the same lock
                log.warning("migrations not applied before the workers (%s); the workers will apply them", exc)
            else:
                env["AUTO_MIGRATE"] = "false"
        # The emulator's URL, if any, stays this port's: every child mounts one.
        env["WORKERS"] = "1"
        self.env = env

    async def _start(self, index: int) -> None:
        env = {**self.env, "WXCAMPAIGN_WORKER_INDEX": str(index)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "--child", env=env, preexec_fn=_die_with_parent
        )
        previous = self.children.get(index)
        failures = previous.failures if previous is not None else 0
        self.children[index] = Child(index, process, failures=failures)
        log.info("worker %d started (pid %d)", index, process.pid)

    async def _watch(self, index: int) -> None:
        """Restart child ``index`` whenever it exits, until the supervisor stops."""
        while not self.stopping.is_set():
            child = self.children[index]
            code = await child.process.wait()
            mark_process_dead(child.process.pid)
            if self.stopping.is_set():
                return
            if code == _CONFIG_ERROR:
                log.error("worker %d (pid %d) exited with a configuration error: stopping", index, child.process.pid)
                self.exit_code = _CONFIG_ERROR
                self.stopping.set()
                return
            lived = time.monotonic() - child.started
            child.failures = 0 if lived >= _HEALTHY_AFTER_SECONDS else child.failures + 1
            delay = _RESTART_BACKOFF[min(child.failures, len(_RESTART_BACKOFF) - 1)]
            log.error(
                "worker %d (pid %d) exited with status %s after %.1f s; restarting in %.1f s",
                index, child.process.pid, code, lived, delay,
            )  # fmt: skip
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                return  # asked to stop meanwhile
            except TimeoutError:
                pass
            await self._start(index)

    async def _stop_children(self) -> None:
        running = [c.process for c in self.children.values() if c.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if not running:
            return
        _, pending = await asyncio.wait(
            [asyncio.ensure_future(p.wait()) for p in running], timeout=SHUTDOWN_GRACE_SECONDS
        )
        if pending:
            log.error(
                "%d worker(s) still running %.0f s after SIGTERM: killing them", len(pending), SHUTDOWN_GRACE_SECONDS
            )
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.wait(pending)
        for process in running:
            mark_process_dead(process.pid)
        log.info("all workers stopped")

    async def _cleanup(self) -> None:
        if self.embedded is not None:
            await self.embedded.stop()
        if self._own_metrics_dir and self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)


def supervise(settings: Settings, workers: int) -> int:
    """Run N children until SIGTERM; the exit status of ``python -m server``."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        return asyncio.run(Supervisor(settings, workers).run())
    except SettingsError as exc:  # the embedded Redis could not start
        print(f"configuration error: {exc}", file=sys.stderr)
        return _CONFIG_ERROR
