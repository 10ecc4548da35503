"""Streaming one JSON document whose pieces are produced batch by batch (a data export).

Like the CSV exports (handlers/common/csv_export.py): the first piece is read before the
answer starts, so a failure there is an ordinary JSON error; a failure after that cannot
become an error answer any more, so the connection is closed without HTTP's end of body.
Every client then reports an incomplete body, and the JSON itself is cut short (it never
reaches its closing ``"complete": true``): a half document never looks whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.keys import REQUEST_ID

error_log = logging.getLogger("wxcampaign.errors")


async def stream(
    request: web.Request, filename: str, chunks: AsyncIterator[bytes], *, content_type: str = "application/json"
) -> web.StreamResponse:
    """Stream ``chunks`` as a JSON attachment named ``filename`` (module docstring);
    ``content_type`` ``application/x-ndjson`` for newline-delimited JSON, whose producer
    ends with its own end line (services.analytics.bulk_export)."""
    first = await anext(chunks, b"")
    request_id = request.get(REQUEST_ID, "-")
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{content_type}; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            # Set here: the middleware adds it after the handler, too late for a streamed answer.
            "X-Request-ID": request_id,
        }
    )
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except Exception:
        error_log.exception("export failed midway on %s %s rid=%s", request.method, request.path, request_id)
        response.force_close()
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
