"""The gauges read at scrape time (server/metrics.py): the claims backlog from Redis, the
notification outbox and the database pool. Each read is bounded in time and a failure
leaves its gauges at their last value: a scrape answers even when Redis or the database
does not (``/readyz`` is what says so)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from tortoise.functions import Count

from models.notifications import Notification
from server.keys import DATABASE, REDIS
from server.metrics import (
    CLAIMS_BACKLOG_AGE,
    CLAIMS_CONSUMER_LAG,
    CLAIMS_STREAM_LENGTH,
    DB_POOL,
    OUTBOX_BACKLOG,
)
from services.stock import backlog

log = logging.getLogger("wxcampaign.metrics")

_SAMPLE_TIMEOUT = 2.0
#: The outbox statuses still to be worked on (the due-rows index leads with the status,
#: so counting them does not read the finished rows, which only grow).
_UNFINISHED = ("pending", "sending")


async def _claims(app: web.Application) -> None:
    found = await backlog(app[REDIS])
    # Streams of campaigns gone from Redis drop out (in this process's samples).
    CLAIMS_STREAM_LENGTH.clear()
    CLAIMS_CONSUMER_LAG.clear()
    for stream, length in found.lengths.items():
        CLAIMS_STREAM_LENGTH.labels(stream).set(length)
    for stream, lag in found.lags.items():
        CLAIMS_CONSUMER_LAG.labels(stream).set(lag)
    CLAIMS_BACKLOG_AGE.set(found.oldest_age_seconds)


async def _outbox() -> None:
    rows: list[dict[str, Any]] = await (
        Notification.filter(status__in=_UNFINISHED).annotate(n=Count("id")).group_by("status").values("status", "n")
    )
    counts = {status: 0 for status in _UNFINISHED}
    counts.update({row["status"]: int(row["n"]) for row in rows})
    for status, n in counts.items():
        OUTBOX_BACKLOG.labels(status).set(n)


def _db_pool(app: web.Application) -> None:
    orm = app[DATABASE].orm
    pool = getattr(orm.db(), "_pool", None) if orm is not None else None
    if pool is None or not hasattr(pool, "get_idle_size"):  # SQLite: one connection, no pool
        return
    idle = pool.get_idle_size()
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("in_use").set(pool.get_size() - idle)


async def sample(app: web.Application) -> None:
    """Refresh the scrape-time gauges from this process's connections."""
    for name, job in (("claims backlog", _claims(app)), ("outbox", _outbox())):
        try:
            await asyncio.wait_for(job, timeout=_SAMPLE_TIMEOUT)
        except Exception as exc:  # any failure: the gauge keeps its last value
            log.warning("metrics: could not read the %s: %s", name, type(exc).__name__)
    if app[DATABASE].orm is not None:
        _db_pool(app)
