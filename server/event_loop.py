"""The event loop a process runs on: uvloop when it is installed and UVLOOP allows it,
else asyncio's own.

uvloop (libuv, in C) runs the same asyncio programs with a cheaper loop and cheaper
transports: per request, a measurable share of the CPU of an endpoint as short as the
coupon grab. It is optional (a platform without a wheel still runs), and UVLOOP=false
falls back to asyncio's loop, e.g. to rule the loop out when chasing a problem.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable


def loop_factory(use_uvloop: bool) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """A factory of new event loops and the loop's name ("uvloop" or "asyncio")."""
    if use_uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"
