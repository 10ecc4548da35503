"""The application factory: one place that wires settings, resources and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from handlers import all_routes
from handlers.public.console import add_console
from handlers.public.system import add_docs_static
from miniprogram_api import CallHooks, MiniProgramClient
from server import __version__, logs
from server.db import apply_migrations, open_orm
from server.dependencies import DatabaseState, Dependency, safe_url
from server.embedded_redis import start_embedded_redis
from server.keys import (
    BARGAINS,
    COUPON_CACHE,
    DATABASE,
    DRAWS,
    ERASED,
    EXPERIMENTS,
    FEED,
    GROUP_BUYS,
    HTTP_SESSION,
    IP_LIMITER,
    JOURNEY,
    LOOP_WATCH,
    OPENAPI,
    POLICIES,
    REDIS,
    REDIS_STATE,
    SETTINGS,
    STOCK,
    WECHAT,
)
from server.loop_watch import watching
from server.metrics import count_wechat_call
from server.middlewares import request_middleware
from server.openapi import API_TITLE, build_openapi
from server.policies import Policies, feed_policy, journey_policy
from server.redis_pool import BoundedConnectionPool, use_cluster_connection
from server.settings import Settings
from server.workers import workers_ctx
from services.core import AnyRedis, request_id_var
from services.experiments import Experiments
from services.feed import Feed
from services.forms import Bargains, GroupBuys, LuckyDraws
from services.journey import Journey
from services.privacy import ErasedCustomers
from services.stock import CouponCache, IpLimiter, Stock

log = logging.getLogger("wxcampaign.server")


#: Connections to one Redis (to each master of a cluster) per process.
REDIS_MAX_CONNECTIONS = 512


def connect_redis(url: str, *, cluster: bool) -> AnyRedis:
    """A client for one Redis or a Redis Cluster. Bounded timeouts: a dead Redis must
    fail a request quickly (503), not hang it."""
    # Both timeouts count event-loop time, not only the network's. A reply can wait on a
    # saturated loop (a flash sale on 2 cores) longer than Redis takes: a short read timeout
    # drops healthy connections mid-command. A loopback connect is instant, but a burst
    # opening a hundred connections on a saturated loop overran a 2 s connect timeout on a
    # loaded CI machine (then 503s, and on a cluster a refresh closing every connection).
    # A refused connect (Redis down) still fails at once.
    # redis-py's own connections on the grab path: a connection class of ours (a write
    # bounded without a task, packing in C) measured 6% and -1% less CPU per grab, under the
    # 10% an override of library internals must save. The pool stays ours
    # (server/redis_pool.py: 6% then 15% in two series, 13% over both; issue 13,
    # bench/RESULTS.md "Library overrides"). The cluster's connection class is a fix, not a
    # speed-up (server/redis_pool.py, ClusterConnection).
    options = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if cluster:
        # Per node: redis-py's cluster client refuses a command (MaxConnectionsError) past
        # its cap instead of waiting, and its default of 100 is below a flash sale's
        # commands in flight on one process.
        client = RedisCluster.from_url(url, max_connections=REDIS_MAX_CONNECTIONS, **options)
        return use_cluster_connection(client)
    # A flash sale has more grabs in flight than redis-py's default pool of 100: wait
    # (briefly) for a connection instead of failing with "Too many connections".
    pool = BoundedConnectionPool.from_url(
        url, max_connections=REDIS_MAX_CONNECTIONS, timeout=2.0, health_check_interval=30, **options
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def create_app(settings: Settings) -> web.Application:
    """Build the application. Resources open when it starts and close when it stops."""
    logs.hold_query_loggers()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_middleware],
    )
    app[SETTINGS] = settings
    app[POLICIES] = Policies.of(settings)
    app[COUPON_CACHE] = CouponCache()
    app[IP_LIMITER] = IpLimiter(rate=settings.grab_ip_rate, burst=settings.grab_ip_burst)
    app[ERASED] = ErasedCustomers(settings.access_token_ttl)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_wechat_ctx)
    app.cleanup_ctx.append(workers_ctx)
    app.cleanup_ctx.append(_metrics_listener_ctx)
    app.cleanup_ctx.append(_loop_watch_ctx)
    routes = all_routes()
    routes.install(app)
    add_docs_static(app)
    add_console(app)
    app[OPENAPI] = build_openapi(routes.routes, title=API_TITLE, version=__version__)
    if settings.emulator_enabled:
        # Development and tests only: Settings.validate refuses this in production, and
        # the emulator is not even imported unless it is mounted.
        from miniprogram_api.emulator import create_emulator_app

        app.add_subapp("/_wechat", create_emulator_app(settings.appid, settings.app_secret))
    return app


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = await start_embedded_redis(settings.data_dir)
        embedded.watch()
        url = embedded.url
        log.info("started embedded redis-server at %s", url)
    client = connect_redis(url, cluster=settings.redis_cluster)
    app[REDIS] = client
    app[STOCK] = Stock(client)
    app[JOURNEY] = build_journey(client, app[STOCK], settings)
    app[GROUP_BUYS] = GroupBuys(client, app[JOURNEY])
    app[BARGAINS] = Bargains(client, app[JOURNEY])
    app[DRAWS] = LuckyDraws(client, app[JOURNEY])
    app[FEED] = build_feed(client, settings)
    app[EXPERIMENTS] = Experiments(client)
    state = app[REDIS_STATE] = Dependency("redis", safe_url(url))

    async def attempt() -> None:
        if isinstance(client, RedisCluster):
            # Learn the slot map now: left to the first commands, a burst of concurrent
            # requests initializes it concurrently and races on its connections.
            await client.initialize()
        await client.ping()

    retrying = None if await state.connect(attempt) else asyncio.create_task(state.retry_forever(attempt))
    try:
        yield
    finally:
        await _cancel(retrying)
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_journey(client: AnyRedis, stock: Stock, settings: Settings) -> Journey:
    """The customer-journey runtime of one process, configured from settings."""
    return Journey(client, stock, journey_policy(settings))


def build_feed(client: AnyRedis, settings: Settings) -> Feed:
    """The discovery feed's runtime of one process, configured from settings."""
    return Feed(client, feed_policy(settings))


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    state = app[DATABASE] = DatabaseState("database", safe_url(settings.database_url))

    async def attempt() -> None:
        if settings.database_url.startswith("sqlite://"):
            path = settings.database_url.removeprefix("sqlite://")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        if settings.auto_migrate:
            await apply_migrations(settings.database_url)
        # Our own context rather than tortoise's aiohttp helper, which leaks its connection
        # under pytest-aiohttp (STACK.md).
        ctx = await open_orm(settings.database_url)
        try:
            await ctx.db().execute_query("SELECT 1")  # a pool may connect lazily: reach it now
        except BaseException:
            await ctx.close_connections()
            raise
        state.orm = ctx

    retrying = None if await state.connect(attempt) else asyncio.create_task(state.retry_forever(attempt))
    try:
        yield
    finally:
        await _cancel(retrying)
        if state.orm is not None:
            await state.orm.close_connections()


def _forwarded_request_id() -> dict[str, str]:
    rid = request_id_var.get()
    return {"X-Request-Id": rid} if rid else {}


#: Each WeChat call carries the id of the request (or the worker's record of it) that
#: caused it, and is counted by API path and errcode (server/metrics.py).
WECHAT_HOOKS = CallHooks(headers=_forwarded_request_id, observe=count_wechat_call)


def wechat_client(session: aiohttp.ClientSession, redis: AnyRedis, settings: Settings) -> MiniProgramClient:
    """The WeChat client of one process, configured from settings."""
    return MiniProgramClient(
        session=session, redis=redis, appid=settings.appid, secret=settings.app_secret,
        base_url=settings.wechat_base_url, timeout=settings.wechat_timeout,
        max_retries=settings.wechat_max_retries, hooks=WECHAT_HOOKS,
    )  # fmt: skip


async def _wechat_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession()
    app[HTTP_SESSION] = session
    app[WECHAT] = wechat_client(session, app[REDIS], settings)
    try:
        yield
    finally:
        await session.close()


async def _loop_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """LOOP_STALL_MS: the event loop's stalls, logged with what held it (server/loop_watch.py)."""
    async with watching(app[SETTINGS].loop_stall_ms) as watch:
        app[LOOP_WATCH] = watch
        yield


async def _metrics_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """METRICS_LISTEN: ``GET /metrics`` alone on an address of its own, without a token
    (bind it where only Prometheus reaches). Bound with SO_REUSEPORT, so each of N
    server processes binds it too; any of them answers for all (multiprocess metrics)."""
    address = app[SETTINGS].metrics_address
    if address is None:
        yield
        return
    from handlers.public.metrics import metrics_response

    async def serve(request: web.Request) -> web.Response:
        return await metrics_response(app)

    side = web.Application()
    side.router.add_get("/metrics", serve)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, address[0], address[1], reuse_port=True).start()
        log.info("metrics listening on http://%s:%d/metrics", *address)
        yield
    finally:
        await runner.cleanup()
