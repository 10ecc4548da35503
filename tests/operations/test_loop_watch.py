"""LOOP_STALL_MS (server/loop_watch.py): a stall of the event loop is logged with the
stack that held it, a garbage collection is told apart from our code, and the loop's lag
and the collections' pauses are in ``/metrics``. GC_FREEZE (server/event_loop.py): a
server process takes its start-up heap out of the collections."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.event_loop import freeze_heap
from server.keys import LOOP_WATCH
from server.loop_watch import TICK, LoopWatch, Stall, watching
from tests.infra import free_port
from tests.operations.procs import ServerProcess, server_env
from tests.operations.test_metrics import sample


async def _first_stall(watch: LoopWatch) -> Stall:
    for _ in range(200):  # the report comes with the ticker's next wake-up
        if watch.stalls:
            return watch.stalls[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no stall reported")


def hold_the_loop(seconds: float) -> None:
    """Blocks the calling thread (the loop's) in Python code: the watchdog can sample it."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_stall_is_reported_with_the_stack_that_held_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "wxcampaign.loop")
    async with watching(50) as watch:
        assert watch is not None
        await asyncio.sleep(0.05)
        hold_the_loop(0.3)
        stall = await _first_stall(watch)
    assert stall.seconds >= 0.25
    assert stall.samples >= 2  # sampled while it lasted, every 12.5 ms past the first 50
    assert stall.stack_count >= 1
    assert stall.stack[-1].endswith(" hold_the_loop")
    assert any(f.endswith(" test_a_stall_is_reported_with_the_stack_that_held_the_loop") for f in stall.stack)
    assert stall.gc_generations == () or stall.gc_seconds < 0.1
    [record] = [r for r in caplog.records if r.name == "wxcampaign.loop"]
    assert record.levelno == logging.WARNING
    assert "event loop held for" in record.getMessage()
    assert "hold_the_loop" in record.getMessage()


async def test_short_waits_are_not_stalls() -> None:
    async with watching(200) as watch:
        assert watch is not None
        for _ in range(5):
            hold_the_loop(0.03)
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.1)
        assert not watch.stalls


async def test_a_full_garbage_collection_is_told_apart() -> None:
    junk = [[i] for i in range(2_000_000)]  # tracked objects a full collection walks
    try:
        async with watching(30) as watch:
            assert watch is not None
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            gc.collect()
            collected = time.perf_counter() - started
            stall = await _first_stall(watch)
    finally:
        del junk
    assert collected >= 0.03, "the collection was too short to be a stall on this machine"
    assert 2 in stall.gc_generations
    assert stall.gc_seconds >= 0.9 * collected
    assert stall.gc_seconds <= stall.seconds + TICK  # the stall may begin within a tick


async def test_lag_and_collections_are_in_metrics(client_with: Any) -> None:
    client: TestClient = await client_with(loop_stall_ms=100)
    assert isinstance(client.app[LOOP_WATCH], LoopWatch)
    before = await (await client.get("/metrics")).text()
    gc.collect()
    await asyncio.sleep(0.2)  # ten ticks
    after = await (await client.get("/metrics")).text()
    lag = "wxcampaign_event_loop_lag_seconds_count"
    assert sample(after, lag) - sample(before, lag) >= 5
    pauses = "wxcampaign_gc_pause_seconds_count"
    assert sample(after, pauses, generation="2") - sample(before, pauses, generation="2") >= 1


async def test_zero_turns_the_watch_off(client_with: Any) -> None:
    client: TestClient = await client_with(loop_stall_ms=0)
    assert client.app[LOOP_WATCH] is None
    assert (await client.get("/healthz")).status == 200


def test_freezing_takes_the_heap_out_of_collections() -> None:
    tracked = len(gc.get_objects())
    try:
        frozen = freeze_heap()
        assert frozen >= tracked // 2  # what start-up made, less the garbage collected first
        assert len(gc.get_objects()) < tracked // 20  # a full collection walks only these now
    finally:
        gc.unfreeze()  # the suite goes on: its later garbage must stay collectable
    assert len(gc.get_objects()) >= tracked // 2


@pytest.mark.timeout(300)
async def test_a_server_process_freezes_its_start_up_heap(tmp_path: Path) -> None:
    env = server_env(PORT=str(free_port()), DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO")
    outputs = []
    for freeze in ("true", "false"):
        server = await ServerProcess.start(env={**env, "GC_FREEZE": freeze})
        try:
            await server.wait_ready()
        finally:
            assert await server.stop() == 0, server.output()
        outputs.append(server.output())
    found = re.search(r"(\d+) objects of start-up frozen out of garbage collection", outputs[0])
    assert found is not None, outputs[0]
    assert int(found[1]) > 50_000  # modules, classes, functions, the OpenAPI document
    assert "frozen out of garbage collection" not in outputs[1]
