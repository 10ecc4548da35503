"""What every benchmark needs: the real server in its own process, customers logged in
through the emulator, and wrk driving a request list, with figures parsed back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk_report.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes] | None
    data_dir: Path | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``): CPU per request is
    the figure a busy, shared machine distorts least."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(extra_env: dict[str, str] | None = None) -> Server:
    """`python -m server` with embedded defaults in a temporary DATA_DIR (unless
    DATABASE_URL/REDIS_URL are given in the environment), waiting until /readyz is 200."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="wxc-bench-"))
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    env.update(extra_env or {})
    process = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("server did not start")
    return Server(url, process, data_dir)


def start_variant(stack: contextlib.ExitStack, env: dict[str, str], plain: str) -> tuple[str, int]:
    """One more server on the database and Redis ``env`` names (DATA_DIR, DATABASE_URL,
    REDIS_URL), without background workers (the first server keeps them), with the library
    overrides ``plain`` names replaced by the plain library (bench/plain.py; "": the server
    as it is). Returns its URL and pid; stopped when ``stack`` closes."""
    port = free_port()
    env = {
        **os.environ, **env, "RUN_WORKERS": "false", "BENCH_PLAIN": plain, "HOST": "127.0.0.1", "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "bench.plain"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)

    def stop() -> None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server with BENCH_PLAIN={plain!r} exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"http://127.0.0.1:{port}", process.pid
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server with BENCH_PLAIN={plain!r} did not start")


#: The standalone emulator's app id and secret (miniprogram_api/emulator/__main__.py).
EMULATOR_APP = {"WECHAT_APPID": "wx00000000emulator", "WECHAT_SECRET": "emulator-secret"}


def start_emulator(stack: contextlib.ExitStack) -> str:
    """The WeChat emulator in its own process (``python -m miniprogram_api.emulator``),
    stopped when ``stack`` closes; returns its base URL.

    With ``--workers N`` each server process would otherwise mount its own emulator, so a
    login code minted by one process is unknown to the process that answers the login.
    Set ``server_env(url)`` on the server and pass ``wechat=url`` to the login helpers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "miniprogram_api.emulator", "--port", str(port), "--code-ttl", "3600"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the WeChat emulator exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the WeChat emulator did not start")


def emulator_env(url: str) -> dict[str, str]:
    """The settings that point a server at the standalone emulator at ``url``."""
    return {"WECHAT_API_BASE": url, **EMULATOR_APP}


async def login_customers(base: str, count: int, prefix: str = "o_bench", *, wechat: str | None = None) -> list[str]:
    """Access tokens of ``count`` customers, logged in through the emulator."""
    return await login_openids(base, [f"{prefix}_{i}" for i in range(count)], wechat=wechat)


async def login_openids(base: str, openids: list[str], *, wechat: str | None = None) -> list[str]:
    """Access tokens of these WeChat users, logged in through the emulator (an openid
    already in the database logs that customer in). ``wechat``: the standalone
    emulator's URL (start_emulator); None: the emulator the server at ``base`` mounts."""
    codes_from = wechat if wechat is not None else f"{base}/_wechat"
    async with aiohttp.ClientSession() as session:

        async def one(openid: str) -> str:
            async with session.post(f"{codes_from}/login-code", json={"openid": openid}) as resp:
                code = (await resp.json())["code"]
            async with session.post(f"{base}/api/v1/auth/wechat/login", json={"code": code}) as resp:
                return (await resp.json())["access_token"]

        tokens: list[str] = []
        for start in range(0, len(openids), 50):
            tokens += await asyncio.gather(*(one(o) for o in openids[start : start + 50]))
        return tokens


@dataclass
class Figures:
    label: str
    connections: int
    requests: int
    seconds: float
    errors: int
    non2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def line(self) -> str:
        return (
            f"{self.label:<34} c={self.connections:<4} {self.rate:>9.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  non-2xx {self.non2xx}  errors {self.errors}"
        )


def wrk(label: str, base: str, lines: list[str], connections: int, seconds: float, threads: int = 2) -> Figures:
    """Drive ``lines`` ("METHOD\\tPATH\\tAUTH|-\\tBODY|-") round-robin with wrk."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
        request_file = handle.name
    try:
        done = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
             "-s", str(LUA), base, "--", request_file],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(request_file)
    for row in done.stdout.splitlines():
        if row.startswith("WRK_JSON "):
            data = json.loads(row.removeprefix("WRK_JSON "))
            return Figures(
                label, connections, data["requests"], data["duration_us"] / 1e6, data["errors"], data["non2xx"],
                data["p50_us"] / 1000, data["p99_us"] / 1000,
            )  # fmt: skip
    raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
