"""Real server processes for the operations tests: ``python -m server`` started as an
operator would, its output collected line by line, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def server_env(**values: str) -> dict[str, str]:
    """The environment of a test server: this one without any deployment's settings."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "REDIS_", "DATABASE_", "PROMETHEUS_"))}
    return {**keep, "APP_ENV": "development", "HOST": "127.0.0.1", **values}


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> ServerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", *args, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        server = cls(process, int(env["PORT"]))
        assert process.stdout is not None and process.stderr is not None
        server._readers = [
            asyncio.create_task(_collect(process.stdout, server.stdout)),
            asyncio.create_task(_collect(process.stderr, server.stderr)),
        ]
        return server

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, seconds: float = 120.0) -> None:
        """Until /readyz answers 200 (the server may be slow to start on a loaded machine)."""
        deadline = asyncio.get_running_loop().time() + seconds
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                assert self.process.returncode is None, self.output()
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise AssertionError("the server did not become ready:\n" + self.output())

    async def pids(self, requests: int = 40) -> set[str]:
        """The pids that answered ``requests`` /healthz calls, each on a new connection
        (the kernel spreads connections, not requests, over the processes)."""
        seen: set[str] = set()
        for _ in range(requests):
            async with aiohttp.ClientSession() as session, session.get(self.base + "/healthz") as resp:
                if resp.status == 200:
                    seen.add(resp.headers["X-Server-Pid"])
        return seen

    async def pids_until(self, want: int, seconds: float = 120.0) -> set[str]:
        """Ask /healthz until ``want`` distinct processes answered (children start one by one)."""
        seen: set[str] = set()
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            seen |= await self.pids(20)
            if len(seen) >= want:
                return seen
        raise AssertionError(f"only {seen} answered:\n{self.output()}")

    async def stop(self, grace: float = 60.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=grace)
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(reader, timeout=5)
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is no running process.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
