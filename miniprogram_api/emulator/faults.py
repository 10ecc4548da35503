"""Per-path call counting and fault injection around the emulated WeChat handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import errmsg_for
from .keys import STATE
from .state import Fault

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_POLL_S = 0.02


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _sleep_unless_gone(request: web.Request, seconds: float) -> None:
    # Stop early once the client timed out and hung up, so a slow-response
    # fault does not hold up server shutdown at the end of a test.
    deadline = time.monotonic() + seconds
    while not _client_gone(request):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(_POLL_S, remaining))


def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp fails to write this to the closed transport and treats that as a
    # client disconnect (no 500 logged); the client sees ServerDisconnectedError.
    return web.Response()


async def _apply(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    if fault.delay > 0:
        await _sleep_unless_gone(request, fault.delay)
        if _client_gone(request):
            # Nobody is listening: do not consume codes or allowances for a
            # request the client already counts as failed.
            return web.Response()
    if fault.drop:
        return _drop(request)
    if fault.garbage:
        return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
    if fault.errcode is not None:
        errmsg = fault.errmsg if fault.errmsg is not None else errmsg_for(fault.errcode)
        return web.json_response({"errcode": fault.errcode, "errmsg": errmsg})
    return None


def instrumented(path: str, handler: Handler) -> Handler:
    """Wrap ``handler`` (serving WeChat ``path``) to count calls and apply queued faults.

    ``path`` is passed explicitly because the request path includes whatever
    prefix the emulator is mounted under.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.calls[path] += 1
        fault = state.take_fault(path)
        if fault is not None:
            response = await _apply(request, fault)
            if response is not None:
                return response
        return await handler(request)

    return wrapped
