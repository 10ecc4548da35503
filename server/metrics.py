"""Prometheus metrics (prometheus-client), served at ``GET /metrics``.

With ``--workers N`` the parent process points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before it starts the children: each process then writes its samples to its
own memory-mapped files there, and whichever process answers a scrape reads them all
(``MultiprocessCollector``), so one scrape sees the whole machine. Without that variable
(one process) the default registry is served.

What is measured, and where:
- HTTP requests: a histogram per method, route *template* (``/api/v1/coupons/{coupon_id}/grab``,
  never the raw path: ids would make a series each) and status, in the request
  middleware; its ``_count`` is the request count.
- Grabs by outcome (``ok`` or the refusal's error code), in the grab handler.
- WeChat calls by API path and errcode (``0``, the error's code, or ``transport``).
- Redis connection-pool waits (only a full pool waits: server/redis_pool.py).
- Pass durations of the background workers (scheduler, claims, notifications).
- The event loop's lag and Python's garbage collection pauses (server/loop_watch.py).
- At scrape time, read from Redis and the database by the process that answers: each
  claims stream's length and its consumer group's lag, the age of the oldest unwritten
  claim, the notification outbox by status (unfinished rows), and this process's
  database pool (connections in use and idle, PostgreSQL).

The recording calls on the grab path cost a dictionary look-up and one histogram
observation (bench/RESULTS.md "Metrics cost (issue 19)").
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import generate_latest as _generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Latency buckets, seconds: dense below 100 ms, where a grab and a feed page should be.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PASS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_LATENCY = Histogram(
    "wxcampaign_http_request_duration_seconds",
    "HTTP requests by method, route template and status: latency (its _count is the request count)",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
GRAB_OUTCOMES = Counter(
    "wxcampaign_grab_outcomes_total", "Coupon grabs by outcome: ok, or the refusal's error code", ["outcome"]
)
WECHAT_CALLS = Counter(
    "wxcampaign_wechat_calls_total",
    "Calls to WeChat's server API by API path and errcode (0 ok; 'transport' for no usable answer)",
    ["api", "errcode"],
)
REDIS_POOL_WAIT = Histogram(
    "wxcampaign_redis_pool_wait_seconds",
    "Waits for a free Redis connection (only a full pool waits; a timeout counts at its full length)",
    buckets=_LATENCY_BUCKETS,
)
WORKER_PASS = Histogram(
    "wxcampaign_worker_pass_seconds", "Durations of background worker passes", ["worker"], buckets=_PASS_BUCKETS
)
LOOP_LAG = Histogram(
    "wxcampaign_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 20 ms (server/loop_watch.py): what any callback due then waited",
    buckets=_LATENCY_BUCKETS,
)
GC_PAUSE = Histogram(
    "wxcampaign_gc_pause_seconds",
    "Python garbage collections by generation: their durations (each holds the event loop)",
    ["generation"],
    buckets=_LATENCY_BUCKETS,
)
# Sampled at scrape time by the answering process: the most recent sample wins.
CLAIMS_STREAM_LENGTH = Gauge(
    "wxcampaign_claims_stream_length",
    "Claims in a campaign's stream not yet written to the database",
    ["stream"],
    multiprocess_mode="mostrecent",
)
CLAIMS_CONSUMER_LAG = Gauge(
    "wxcampaign_claims_consumer_lag",
    "Entries of a claims stream its consumer group has not read yet (Redis XINFO GROUPS lag)",
    ["stream"],
    multiprocess_mode="mostrecent",
)
CLAIMS_BACKLOG_AGE = Gauge(
    "wxcampaign_claims_backlog_age_seconds",
    "Age of the oldest claim not yet written to the database (0: none)",
    multiprocess_mode="mostrecent",
)
OUTBOX_BACKLOG = Gauge(
    "wxcampaign_outbox_backlog",
    "Notifications in the outbox by status (unfinished ones: pending, sending, retry)",
    ["status"],
    multiprocess_mode="mostrecent",
)
DB_POOL = Gauge(
    "wxcampaign_db_pool_connections",
    "Database pool connections by state (PostgreSQL) of the process that answered the last scrape",
    ["state"],
    multiprocess_mode="mostrecent",
)

_HTTP_CHILDREN: dict[tuple[str, str, int], Any] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One finished request. The labelled child is cached: ``labels()`` takes a lock and
    builds a key each time, which the grab path should not pay."""
    key = (method, route, status)
    child = _HTTP_CHILDREN.get(key)
    if child is None:
        child = _HTTP_CHILDREN[key] = HTTP_LATENCY.labels(method, route, str(status))
    child.observe(seconds)


_GRAB_CHILDREN: dict[str, Any] = {}


def count_grab(outcome: str) -> None:
    child = _GRAB_CHILDREN.get(outcome)
    if child is None:
        child = _GRAB_CHILDREN[outcome] = GRAB_OUTCOMES.labels(outcome)
    child.inc()


def count_wechat_call(api: str, errcode: str) -> None:
    WECHAT_CALLS.labels(api, errcode).inc()


class timed_pass:
    """``with timed_pass("claims"):`` observes the block's duration."""

    __slots__ = ("_child", "_started")

    def __init__(self, worker: str) -> None:
        self._child = WORKER_PASS.labels(worker)
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._child.observe(time.perf_counter() - self._started)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def generate_latest() -> bytes:
    """The exposition of every process (multiprocess mode) or of this one."""
    if multiprocess_dir() is None:
        return _generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return _generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """A child exited: its live gauges no longer count (the parent calls this)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)
