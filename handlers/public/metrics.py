"""Prometheus metrics of every server process (server/metrics.py)."""

from __future__ import annotations

import hmac

from aiohttp import web

from server.access import PUBLIC
from server.keys import SETTINGS
from server.metrics import CONTENT_TYPE, generate_latest
from server.metrics_sampler import sample
from server.routing import RouteTable
from services.core import errors

routes = RouteTable()


def metrics_allowed(request: web.Request) -> None:
    """With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` may read them;
    without it they are open outside production and hidden (404) in production, where
    ``METRICS_LISTEN`` serves them on an address of their own."""
    settings = request.app[SETTINGS]
    if settings.metrics_token is not None:
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if not given:
            raise errors.Unauthenticated("GET /metrics needs Authorization: Bearer <METRICS_TOKEN>")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        ):
            raise errors.InvalidToken("not the metrics token")
        return
    if settings.app_env == "production":
        raise errors.NotFound("metrics are served only with METRICS_TOKEN or on METRICS_LISTEN in production")


async def metrics_response(app: web.Application) -> web.Response:
    """The exposition, after refreshing the gauges read at scrape time."""
    await sample(app)
    body = generate_latest()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


@routes.add(
    "GET", "/metrics", access=PUBLIC, tags=("system",), media_type="text/plain",
    summary="Prometheus metrics of every server process (open in development; in production only with the"
    " METRICS_TOKEN bearer token, or on METRICS_LISTEN)",
    errors=(errors.Unauthenticated, errors.InvalidToken, errors.NotFound),
)  # fmt: skip
async def metrics(request: web.Request) -> web.Response:
    metrics_allowed(request)
    return await metrics_response(request.app)
