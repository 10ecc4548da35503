"""Running a database transaction to its end even when the caller is cancelled.

A worker is cancelled at shutdown, or by an operator; cancelling a tortoise transaction
in the middle can leave its connection's transaction lock held (seen with SQLite: the
next transaction waits forever). So the work runs as its own task: on cancellation we
wait for it (bounded) and then let the cancellation through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_to_end(work: Coroutine[Any, Any, T], grace_seconds: float = 30.0) -> T:
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task], timeout=grace_seconds)
        raise
