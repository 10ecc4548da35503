"""Liveness, readiness, and the API's own documentation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Literal

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from server.access import PUBLIC
from server.db import write_probe
from server.keys import DATABASE, OPENAPI, REDIS, SETTINGS
from server.routing import RouteTable, json_response
from services.core import Out, errors
from services.stock import backlog

routes = RouteTable()

_PROBE_TIMEOUT = 2.0


class HealthOut(Out):
    status: Literal["ok"]


class ReadyOut(Out):
    status: Literal["ok"]
    checks: dict[str, Literal["ok", "failed"]]
    #: How long the oldest grab not yet written to the database has waited, seconds
    #: (None when Redis did not answer).
    claims_backlog_age_seconds: float | None


@routes.add(
    "GET", "/healthz", access=PUBLIC, tags=("system",), response=HealthOut,
    summary="The process is alive (its pid in the X-Server-Pid header: which of --workers N answered)",
)  # fmt: skip
async def healthz(request: web.Request) -> web.Response:
    response = json_response(HealthOut(status="ok"))
    response.headers["X-Server-Pid"] = str(os.getpid())
    return response


async def _probe(check: Awaitable[object]) -> Literal["ok", "failed"]:
    try:
        await asyncio.wait_for(check, timeout=_PROBE_TIMEOUT)
    except Exception:  # any failure at all means "not ready"; the name says which part
        return "failed"
    return "ok"


async def _claims_age(request: web.Request) -> float | None:
    try:
        found = await asyncio.wait_for(backlog(request.app[REDIS]), timeout=_PROBE_TIMEOUT)
    except Exception:  # Redis did not answer: its own check says so
        return None
    return round(found.oldest_age_seconds, 3)


@routes.add(
    "GET", "/readyz", access=PUBLIC, tags=("system",), response=ReadyOut,
    summary="The database takes writes, Redis answers and grabs reach the database within READY_CLAIMS_MAX_AGE"
    " (503 naming the failed part otherwise)",
    errors=(errors.NotReady,),
)  # fmt: skip
async def readyz(request: web.Request) -> ReadyOut:
    # Writes, not SELECT 1: a read-only or full database answers reads and fails every write.
    # Not yet reached at start-up (still retrying): failed, with nothing to probe.
    settings = request.app[SETTINGS]
    orm = request.app[DATABASE].orm
    checks: dict[str, Literal["ok", "failed"]] = {
        "database": "failed" if orm is None else await _probe(write_probe(orm.db(), settings.database_url)),
        "redis": await _probe(request.app[REDIS].ping()),
    }
    # Grabs are decided in Redis and written by the claims worker: one stuck (the database
    # refusing, every worker dead) leaves customers with vouchers the database lacks.
    age = await _claims_age(request)
    checks["claims"] = "ok" if age is not None and age <= settings.ready_claims_max_age else "failed"
    failed = [name for name, value in checks.items() if value != "ok"]
    if failed:
        raise errors.NotReady(
            f"not ready: {', '.join(failed)} unavailable",
            details={"checks": checks, "claims_backlog_age_seconds": age},
        )
    return ReadyOut(status="ok", checks=checks, claims_backlog_age_seconds=age)


@routes.add(
    "GET", "/api/openapi.json", access=PUBLIC, tags=("system",), summary="This API's OpenAPI 3.0 document",
    media_type="application/json",
)  # fmt: skip
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WeChat campaign API</title>
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


@routes.add(
    "GET", "/api/docs", access=PUBLIC, tags=("system",), summary="Browsable API documentation", media_type="text/html"
)
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_PAGE, content_type="text/html")


def add_docs_static(app: web.Application) -> None:
    """Swagger UI's assets ship inside a wheel, so the docs page works with no internet."""
    app.router.add_static("/api/docs/static/", swagger_ui_path, name="swagger_static")
