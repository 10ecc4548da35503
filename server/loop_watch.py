"""Event-loop stalls: how long a process's loop could not run, and what held it.

Every request, background pass and Redis reply of a process waits while one callback
holds its event loop. On the feed's open-loop bench, stalls of 100–160 ms decided the
p99 (bench/RESULTS.md) and could not be told apart by latency figures alone, so each
process watches its own loop:

- a ticker task sleeps ``TICK`` seconds again and again and observes how late each
  wake-up was (``wxcampaign_event_loop_lag_seconds``): the delay any callback due then
  suffered;
- garbage collections are timed through ``gc.callbacks``
  (``wxcampaign_gc_pause_seconds`` by generation): a full collection holds the loop
  with no frame of ours to blame;
- a watchdog thread samples the loop thread's stack (``sys._current_frames``) while the
  loop has not ticked for ``LOOP_STALL_MS``. When the loop runs again, one warning says
  how long it was held, how much of that was garbage collection, and the stack sampled
  most often.

A sample needs the GIL, which the loop's thread hands over every
``sys.getswitchinterval()`` (5 ms) while it runs Python code, so a stall in Python is
sampled while it lasts; a stall inside one C call that keeps the GIL is sampled when it
ends (its stack is then the caller's), and a process the OS did not schedule shows no
stack of its own (the machine was busy). The ticker costs one timer every ``TICK``
seconds; the thread wakes four times per threshold and reads nothing while the loop
ticks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from server.metrics import GC_PAUSE, LOOP_LAG

log = logging.getLogger("wxcampaign.loop")

#: Seconds between the ticker's wake-ups: the lag histogram's resolution for short stalls.
TICK = 0.02
#: Innermost frames kept per stack sample (enough to name the caller in our code).
STACK_DEPTH = 12


@dataclass
class Stall:
    """One stall, as reported when the loop ran again."""

    #: How late the ticker woke: the loop was held this long, up to ``TICK`` more (the
    #: hold may begin while the ticker sleeps).
    seconds: float
    gc_seconds: float
    gc_generations: tuple[int, ...]
    samples: int
    #: The stack seen most often (outermost first), and in how many samples.
    stack: tuple[str, ...] = ()
    stack_count: int = 0


@dataclass
class _GcClock:
    """Garbage collection time, summed by ``gc.callbacks`` in whatever thread collects."""

    total: float = 0.0
    started: float = 0.0
    #: (generation, seconds) of the collections since the ticker last looked. The ticker
    #: observes them: a histogram's observe takes a lock, and a collection can start
    #: inside an observe (any allocation may collect), which would wait on itself.
    pauses: list[tuple[int, float]] = field(default_factory=list)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self.started = now
            return
        seconds = now - self.started
        self.total += seconds
        self.pauses.append((info["generation"], seconds))

    def flush(self) -> tuple[int, ...]:
        """Observe the pauses seen since the last flush; their generations."""
        pauses, self.pauses = self.pauses, []
        for generation, seconds in pauses:
            GC_PAUSE.labels(str(generation)).observe(seconds)
        return tuple(sorted({generation for generation, _ in pauses}))


def _frames(frame: Any) -> tuple[str, ...]:
    """``file:line function`` of the innermost frames, outermost first (no source read)."""
    summary = traceback.StackSummary.extract(traceback.walk_stack(frame), limit=STACK_DEPTH, lookup_lines=False)
    return tuple(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(summary))


class LoopWatch:
    """Watches the running loop of the thread that calls :meth:`run`.

    Precondition: one watch per loop; ``threshold`` > 0 seconds."""

    def __init__(self, *, threshold: float) -> None:
        self.threshold = threshold
        self.stalls: collections.deque[Stall] = collections.deque(maxlen=100)
        self._gc = _GcClock()
        self._lock = threading.Lock()
        self._samples: list[tuple[str, ...]] = []
        self._last_tick = time.perf_counter()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    async def run(self) -> None:
        """Tick until cancelled; the watchdog thread and the GC clock live as long."""
        loop_thread = threading.get_ident()
        gc.callbacks.append(self._gc)
        self._thread = threading.Thread(target=self._watch, args=(loop_thread,), name="loop-watch", daemon=True)
        self._thread.start()
        try:
            while True:
                before = time.perf_counter()
                gc_before = self._gc.total
                self._last_tick = before
                await asyncio.sleep(TICK)
                late = max(time.perf_counter() - before - TICK, 0.0)
                LOOP_LAG.observe(late)
                generations = self._gc.flush()
                if late >= self.threshold:
                    self._report(late, self._gc.total - gc_before, generations)
                elif self._samples:  # sampled just before the tick came (held < threshold + TICK)
                    with self._lock:
                        self._samples.clear()
        finally:
            self._stopped.set()
            gc.callbacks.remove(self._gc)
            self._thread.join()

    def _report(self, seconds: float, gc_seconds: float, generations: tuple[int, ...]) -> None:
        with self._lock:
            samples, self._samples = self._samples, []
        stack: tuple[str, ...] = ()
        count = 0
        if samples:
            stack, count = collections.Counter(samples).most_common(1)[0]
        stall = Stall(
            seconds=seconds,
            gc_seconds=gc_seconds,
            gc_generations=generations,
            samples=len(samples),
            stack=stack,
            stack_count=count,
        )
        self.stalls.append(stall)
        where = "\n  ".join(stack) if stack else "(none: one C call kept the GIL, or the process was not scheduled)"
        log.warning(
            "event loop held for %.0f ms (garbage collection %.0f ms, generations %s);"
            " stack in %d of %d samples:\n  %s",
            seconds * 1000,
            gc_seconds * 1000,
            list(stall.gc_generations) or "none",
            count,
            len(samples),
            where,
        )

    def _watch(self, loop_thread: int) -> None:
        every = max(self.threshold / 4, 0.005)
        while not self._stopped.wait(every):
            if time.perf_counter() - self._last_tick < self.threshold:
                continue
            frame = sys._current_frames().get(loop_thread)
            if frame is None:
                continue
            stack = _frames(frame)
            del frame  # a frame reference keeps every local of the loop's stack alive
            with self._lock:
                self._samples.append(stack)


@contextlib.asynccontextmanager
async def watching(threshold_ms: int) -> AsyncIterator[LoopWatch | None]:
    """A :class:`LoopWatch` on the running loop for the block's duration; ``None`` (and
    nothing runs) when ``threshold_ms`` is 0."""
    if threshold_ms <= 0:
        yield None
        return
    watch = LoopWatch(threshold=threshold_ms / 1000)
    task = asyncio.get_running_loop().create_task(watch.run(), name="loop-watch")
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
