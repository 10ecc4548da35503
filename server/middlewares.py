"""Request id + access log, and the one place where failures become the JSON error shape."""

from __future__ import annotations

import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import istr
from redis import exceptions as redis_errors
from tortoise import exceptions as orm_errors

from server.db import database_unwritable
from server.keys import DATABASE, PRINCIPAL, REDIS_STATE, REQUEST_ID
from server.metrics import observe_request
from server.routing import json_body
from services.core import ErrorBody, ErrorOut, errors, request_id_var

access_log = logging.getLogger("wxcampaign.access")
error_log = logging.getLogger("wxcampaign.errors")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_X_REQUEST_ID = istr("X-Request-ID")

_HTTP_CODES: dict[int, type[errors.AppError]] = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}


#: The wait a 429 announces when nothing more precise is known: the docs promise every
#: 429 a ``Retry-After``, so no 429 may leave without one.
DEFAULT_RETRY_AFTER_S = 60


def shaped_error(
    code: str,
    status: int,
    message: str,
    details: dict[str, object],
    headers: dict[str, str] | None = None,
    retry_after: int | None = None,
) -> web.Response:
    """The JSON error response; ``Retry-After`` from ``details["retry_after"]``, else
    ``retry_after``, else (for a 429) ``DEFAULT_RETRY_AFTER_S``."""
    body = ErrorOut(error=ErrorBody(code=code, message=message, details=details))
    response = web.Response(body=json_body(body), status=status, content_type="application/json")
    if headers:
        response.headers.update(headers)
    wait = details.get("retry_after")
    if not isinstance(wait, int):
        wait = retry_after
    if wait is None and status == 429:
        wait = DEFAULT_RETRY_AFTER_S
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


def error_response(exc: errors.AppError, headers: dict[str, str] | None = None) -> web.Response:
    return shaped_error(exc.code, exc.status, exc.message, exc.details, headers, exc.retry_after)


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tag the request with an id (the caller's, if sane), turn failures into the JSON
    error shape, and log one line when it ends.

    One middleware rather than two: every request of every route passes through it, and
    each middleware costs aiohttp a coroutine frame per request. The log line names the
    path, never the query string or body: those may carry codes, tokens or phone data.
    ``who`` is the verified caller, also when refused (403); ``-`` when there is none
    (public routes, 401).
    """
    incoming = request.headers.get(_X_REQUEST_ID, "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else os.urandom(16).hex()
    request[REQUEST_ID] = request_id
    # Every log line of this request (services, WeChat calls) carries its id, and so does
    # what it hands to workers (a grab's claim). aiohttp runs each request in its own
    # task, so the variable is this request's alone; reset for keep-alive's next request.
    context_token = request_id_var.set(request_id)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except errors.AppError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _http_error(exc)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError) as exc:
            error_log.warning("redis unavailable on %s %s rid=%s: %r", request.method, request.path, request_id, exc)
            response = error_response(errors.RedisUnavailable())
        except (orm_errors.DBConnectionError, ConnectionRefusedError) as exc:
            error_log.warning("database unavailable: %s rid=%s", type(exc).__name__, request_id)
            response = error_response(errors.DatabaseUnavailable())
        except Exception as exc:
            app = request.app
            if not app[DATABASE].is_ready or not app[REDIS_STATE].is_ready:
                # Not reached since start-up (retrying): the ORM or the cluster's slot map is
                # missing, and what fails then is no bug. Checked only on failure: free otherwise.
                missing = errors.DatabaseUnavailable() if not app[DATABASE].is_ready else errors.RedisUnavailable()
                error_log.warning("%s on %s %s rid=%s", missing.code, request.method, request.path, request_id)
                response = error_response(missing)
            elif database_unwritable(exc):
                # Read-only or full: every write fails alike; one line, not a traceback each.
                error_log.warning(
                    "database refuses writes on %s %s: %s rid=%s", request.method, request.path, exc, request_id
                )
                response = error_response(errors.DatabaseUnavailable())
            elif isinstance(exc, ConnectionResetError) and _client_gone(request):
                # The client closed its connection mid-request (e.g. a load generator or an
                # app giving up while its body was being read): nobody to answer and nothing
                # broken. One line, and nginx's 499 in the access log and the metrics.
                error_log.info("client closed the request on %s %s rid=%s", request.method, request.path, request_id)
                response = web.Response(status=CLIENT_CLOSED_REQUEST)
            else:
                response = _internal_error(request, request_id)
        response.headers[_X_REQUEST_ID] = request_id
        elapsed = time.perf_counter() - started
        # The route's template, never the raw path: ids would make a metric series each.
        resource = request.match_info.route.resource
        observe_request(request.method, resource.canonical if resource is not None else "-", response.status, elapsed)
        status = response.status
        # A denied request (401/403) is logged at WARNING with the caller, so it stays in a
        # log kept at LOG_LEVEL=WARNING. The arguments cost more than a disabled logger's call.
        level = logging.WARNING if status in (401, 403) else logging.INFO
        if access_log.isEnabledFor(level):
            principal = request.get(PRINCIPAL)
            who = f"{principal.kind}:{principal.id}" if principal else "-"
            access_log.log(
                level,
                "%s %s %d %.1fms rid=%s who=%s",
                request.method,
                request.path,
                status,
                elapsed * 1000,
                request_id,
                who,
                extra={"method": request.method, "path": request.path, "status": status, "who": who},
            )
        return response
    finally:
        request_id_var.reset(context_token)


#: nginx's status for a request its client closed before the answer; never sent to anyone.
CLIENT_CLOSED_REQUEST = 499


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _internal_error(request: web.Request, request_id: str) -> web.Response:
    """A bug: the traceback goes to the log with the request id; the client sees none of it.
    Called inside the ``except`` block, so the log has the exception."""
    error_log.exception("unhandled error on %s %s rid=%s", request.method, request.path, request_id)
    return error_response(errors.InternalError(details={"request_id": request_id}))


def _http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, wrong method, body too large) in our shape."""
    mapped = _HTTP_CODES.get(exc.status)
    if mapped is None:
        return shaped_error("http_error", exc.status, exc.reason, {})
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(mapped(), headers)
