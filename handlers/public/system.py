"""Liveness, readiness, and the API's own documentation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from server.access import PUBLIC
from server.db import write_probe
from server.keys import DATABASE, OPENAPI, REDIS, SETTINGS
from server.routing import RouteTable
from services.core import Out, errors

routes = RouteTable()

_PROBE_TIMEOUT = 2.0


class HealthOut(Out):
    status: Literal["ok"]


class ReadyOut(Out):
    status: Literal["ok"]
    checks: dict[str, Literal["ok", "failed"]]


@routes.add("GET", "/healthz", access=PUBLIC, tags=("system",), response=HealthOut, summary="The process is alive")
async def healthz(request: web.Request) -> HealthOut:
    return HealthOut(status="ok")


async def _probe(check: Awaitable[object]) -> Literal["ok", "failed"]:
    try:
        await asyncio.wait_for(check, timeout=_PROBE_TIMEOUT)
    except Exception:  # any failure at all means "not ready"; the name says which part
        return "failed"
    return "ok"


@routes.add(
    "GET", "/readyz", access=PUBLIC, tags=("system",), response=ReadyOut,
    summary="The database takes writes and Redis answers (503 naming the failed part otherwise)",
    errors=(errors.NotReady,),
)  # fmt: skip
async def readyz(request: web.Request) -> ReadyOut:
    # Writes, not SELECT 1: a read-only or full database answers reads and fails every write.
    # Not yet reached at start-up (still retrying): failed, with nothing to probe.
    orm = request.app[DATABASE].orm
    checks = {
        "database": "failed"
        if orm is None
        else await _probe(write_probe(orm.db(), request.app[SETTINGS].database_url)),
        "redis": await _probe(request.app[REDIS].ping()),
    }
    failed = [name for name, value in checks.items() if value != "ok"]
    if failed:
        raise errors.NotReady(f"not ready: {', '.join(failed)} unavailable", details={"checks": checks})
    return ReadyOut(status="ok", checks=checks)


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
