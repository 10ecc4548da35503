"""CSV cells and rows for streamed exports, safe to open in a spreadsheet, and the one
way an export is streamed.

A streamed export has sent ``200`` and its header row before it knows whether the last
batch can be read, so a failure midway cannot become an error answer any more. It must
not look like success either: the stream then ends with a marker line naming the failure
and the request id (for whoever kept the partial file), and the connection is closed
without HTTP's end-of-body (chunked encoding's last chunk), so every HTTP client reports
an incomplete body rather than a clean end of file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from server.keys import REQUEST_ID

error_log = logging.getLogger("wxcampaign.errors")

#: How the last line of an export that failed midway starts (see the module docstring).
FAILED_MARKER = "# export failed"


def cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def rows(values: Sequence[Sequence[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(values)
    return out.getvalue().encode()


async def stream(
    request: web.Request, filename: str, header: Sequence[str], batches: AsyncIterator[list[list[str]]]
) -> web.StreamResponse:
    """Stream ``header`` then each batch of rows as a CSV attachment named ``filename``.

    The first batch is read before anything is sent, so bad input or a database that
    does not answer is still an ordinary JSON error. A failure after that ends the
    stream visibly (module docstring); the exception is logged with the request id.
    """
    first = await anext(batches, None)  # before the answer starts: failures here are ordinary errors
    request_id = request.get(REQUEST_ID, "-")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            # Set here: the middleware adds it after the handler, too late for a streamed answer.
            "X-Request-ID": request_id,
        }
    )
    await response.prepare(request)
    await response.write(rows([list(header), *(first or [])]))
    if first is not None:
        try:
            async for batch in batches:
                await response.write(rows(batch))
        except Exception:
            error_log.exception("export failed midway on %s %s rid=%s", request.method, request.path, request_id)
            await _abort(request, response, f"{FAILED_MARKER}: internal_error, request_id {request_id}; incomplete")
            return response
    await response.write_eof()
    return response


async def _abort(request: web.Request, response: web.StreamResponse, marker: str) -> None:
    """Write the marker line, then close the connection without the end-of-body chunk.

    ``close`` (not ``abort``) so the marker already buffered still reaches the client;
    aiohttp's own end-of-body write then meets a closed transport and is dropped.
    """
    try:
        await response.write(marker.encode() + b"\r\n")
    except ConnectionError:
        pass  # the client is gone already: nothing to tell it
    response.force_close()
    if request.transport is not None:
        request.transport.close()
