"""``python -m server doctor`` against real services: a healthy deployment passes, and a
broken one is told what is wrong in plain words, exiting 1."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from miniprogram_api.emulator import create_emulator_app
from tests.conftest import TEST_SECRET
from tests.infra import RedisClusterServers, _wait_for_port, free_port
from tests.operations.procs import ROOT, server_env

pytestmark = pytest.mark.timeout(300)

APPID, SECRET = "wx_doctor_app", "doctor-secret"


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server persisting as production should (append-only file, fsync every second)."""
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(tmp_path), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_port(port, 10, "redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    async with TestServer(create_emulator_app(APPID, SECRET), host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


async def _doctor(**env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "doctor", cwd=ROOT, env=server_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


def _deployment(database: str, redis: str, wechat: str, **more: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database, "REDIS_URL": redis, "WECHAT_APPID": APPID, "WECHAT_SECRET": SECRET,
        "WECHAT_API_BASE": wechat, "SECRET_KEY": TEST_SECRET, "APP_ENV": "test", **more,
    }  # fmt: skip


async def test_a_healthy_deployment_passes(
    sqlite_template: Path, tmp_path: Path, durable_redis: str, emulator: str
) -> None:
    db = tmp_path / "app.sqlite3"
    shutil.copyfile(sqlite_template, db)
    code, out = await _doctor(**_deployment(f"sqlite://{db}", durable_redis, emulator))
    assert code == 0, out
    assert "PROBLEM" not in out
    assert "takes writes" in out
    assert "appendonly yes, appendfsync everysec" in out
    assert f"issues access tokens for app {APPID}" in out
    assert out.rstrip().endswith("warnings)")


async def test_a_broken_deployment_is_told_what_is_wrong(
    tmp_path: Path, redis_url: str, emulator: str, postgres_cluster: object
) -> None:
    """The database on a closed port, the test Redis without an append-only file, a
    wrong WeChat secret: three problems, each named, exit 1."""
    closed = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    env = _deployment(closed, redis_url, emulator, WECHAT_SECRET="wrong-secret")
    code, out = await _doctor(**env)
    assert code == 1, out
    assert "PROBLEM  database postgres://postgres@127.0.0.1" in out and "is not reachable" in out
    assert "appendonly no: a restart loses coupon stock" in out
    assert f"refused a token for app {APPID}: errcode 40125" in out or "refused a token" in out
    assert out.rstrip().endswith("3 problems found")

    missing = tmp_path / "never" / "app.sqlite3"
    code, out = await _doctor(**_deployment(f"sqlite://{missing}", redis_url, emulator))
    assert code == 1 and "does not exist: run `python -m server migrate`" in out
    assert not missing.exists()  # the doctor changes nothing


async def test_a_bad_setting_is_a_problem() -> None:
    code, out = await _doctor(WORKERS="0")
    assert code == 1
    assert "PROBLEM  settings: WORKERS must be between 1 and 64, got 0" in out


async def test_a_cluster_is_checked_slot_by_slot(
    redis_cluster: RedisClusterServers, sqlite_template: Path, tmp_path: Path, emulator: str
) -> None:
    db = tmp_path / "app.sqlite3"
    shutil.copyfile(sqlite_template, db)
    code, out = await _doctor(**_deployment(f"sqlite://{db}", redis_cluster.url, emulator))
    assert code == 1
    assert "is a cluster node but REDIS_CLUSTER is false" in out

    code, out = await _doctor(**_deployment(f"sqlite://{db}", redis_cluster.url, emulator, REDIS_CLUSTER="true"))
    assert code == 1, out
    assert "all 16384 slots served" in out
    # The test cluster keeps no append-only file: each master is named.
    for port in redis_cluster.ports:
        assert f"Redis 127.0.0.1:{port} has appendonly no" in out
