"""The event loop a process runs on: uvloop when it is installed and UVLOOP allows it,
else asyncio's own.

uvloop (libuv, in C) runs the same asyncio programs with a cheaper loop and cheaper
transports: per request, a measurable share of the CPU of an endpoint as short as the
coupon grab. It is optional (a platform without a wheel still runs), and UVLOOP=false
falls back to asyncio's loop, e.g. to rule the loop out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable


def loop_factory(use_uvloop: bool) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """A factory of new event loops and the loop's name ("uvloop" or "asyncio")."""
    if use_uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def freeze_heap() -> int:
    """Collect once, then move every object the process holds out of the garbage
    collector's generations (``gc.freeze``); returns how many were moved.

    Why: a full (generation 2) collection walks every tracked object and holds the event
    loop meanwhile. A started server holds about 150,000 (modules, classes, functions, the
    OpenAPI document), which a full collection took 100-500 ms to walk on the feed's
    open-loop bench: the stalls that made its p99 (bench/RESULTS.md). Frozen, they are
    never walked again; later collections walk only what was made since. The cost: a
    reference cycle among frozen objects is never freed (objects freed by their count
    still are), which start-up's objects, alive for the whole process, do not form.

    Precondition: the process has started (call it once, after the app's start-up), or
    what start-up makes next is walked as before."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
