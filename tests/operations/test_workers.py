"""``python -m server --workers N``: N processes on one port, looked after by a parent
(server/supervisor.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from tests.infra import free_port
from tests.operations.procs import ServerProcess, alive, server_env

pytestmark = pytest.mark.timeout(600)


async def test_two_workers_share_the_port_restart_a_dead_one_and_stop_on_sigterm(tmp_path: Path) -> None:
    """Embedded mode (no REDIS_URL, a fresh SQLite file): the parent starts one
    redis-server and migrates once; both children answer on the port; a child killed
    with SIGKILL is replaced; SIGTERM to the parent stops the children and the Redis."""
    data = tmp_path / "data"
    env = server_env(PORT=str(free_port()), DATA_DIR=str(data), WORKERS="1")
    server = await ServerProcess.start("--workers", "2", env=env)
    try:
        await server.wait_ready()
        first = await server.pids_until(2)
        assert len(first) == 2
        parent = server.process.pid
        assert str(parent) not in first  # the parent serves nothing itself
        owner = json.loads((data / "redis" / "owner.json").read_text())
        assert owner["server_pid"] == parent  # one redis-server, the parent's
        redis_pid = int(owner["pid"])
        assert alive(redis_pid)

        victim = int(sorted(first)[0])
        os.kill(victim, signal.SIGKILL)
        after = await server.pids_until(2)
        seen_after = after - {str(victim)}
        deadline = asyncio.get_running_loop().time() + 120
        while len(seen_after) < 2 and asyncio.get_running_loop().time() < deadline:
            seen_after |= await server.pids(20) - {str(victim)}
        assert len(seen_after) == 2, server.output()  # the survivor and a new child
        assert "worker 0 started" in server.output() or "worker 1 started" in server.output()
        assert "exited with status -9" in server.output()
        children = {int(p) for p in seen_after}
    finally:
        code = await server.stop(grace=90)
    assert code == 0, server.output()
    for pid in (*children, redis_pid):
        assert not alive(pid), f"pid {pid} survived the parent's SIGTERM"
    assert "all workers stopped" in server.output()
    assert "Traceback" not in server.output()
    # Migrations ran in the parent, before the children started (none of them did).
    assert server.output().count("worker 0 started") >= 1


async def test_workers_setting_and_a_bad_value(tmp_path: Path) -> None:
    env = server_env(PORT=str(free_port()), DATA_DIR=str(tmp_path / "data"), WORKERS="0")
    server = await ServerProcess.start(env=env)
    code = await asyncio.wait_for(server.process.wait(), timeout=60)
    await server.stop()
    assert code == 2
    assert "WORKERS must be between 1 and 64" in server.output()
