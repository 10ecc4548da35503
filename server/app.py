"""The application factory: one place that wires settings, resources and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from handlers import all_routes
from handlers.system import add_docs_static
from miniprogram_api import MiniProgramClient
from server import __version__, logs
from server.db import apply_migrations, open_orm
from server.embedded_redis import start_embedded_redis
from server.keys import COUPON_CACHE, HTTP_SESSION, IP_LIMITER, JOURNEY, OPENAPI, ORM, REDIS, SETTINGS, STOCK, WECHAT
from server.middlewares import request_middleware
from server.openapi import build_openapi
from server.settings import Settings
from server.workers import workers_ctx
from services.core.redis import AnyRedis
from services.feed.engine import FeedPolicy
from services.journey.participation import Journey, JourneyPolicy
from services.stock.coupon_cache import CouponCache
from services.stock.gate import Stock
from services.stock.ip_limiter import IpLimiter

log = logging.getLogger("wxcampaign.server")


def connect_redis(url: str, *, cluster: bool) -> AnyRedis:
    """A client for one Redis or a Redis Cluster. Bounded timeouts: a dead Redis must
    fail a request quickly (503), not hang it."""
    # A reply can wait on a saturated event loop (a flash sale on 2 cores) longer than
    # Redis takes: a short read timeout then drops healthy connections mid-command, and
    # redis-py's cluster client can race on the dropped connection. Connecting stays quick.
    # redis-py's own connections and pools: a connection class of ours (a write bounded
    # without a task, packing in C) and a semaphore-based pool each measured ~6% less CPU
    # per grab, under the 10% an override of library internals must save (issue 13,
    # bench/RESULTS.md "Library overrides").
    options = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}
    if cluster:
        return RedisCluster.from_url(url, **options)
    # A flash sale has more grabs in flight than redis-py's default pool of 100: wait
    # (briefly) for a connection instead of failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(url, max_connections=512, timeout=2.0, health_check_interval=30, **options)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def create_app(settings: Settings) -> web.Application:
    """Build the application. Resources open when it starts and close when it stops."""
    logs.hold_query_loggers()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_middleware],
    )
    app[SETTINGS] = settings
    app[COUPON_CACHE] = CouponCache()
    app[IP_LIMITER] = IpLimiter(rate=settings.grab_ip_rate, burst=settings.grab_ip_burst)
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_wechat_ctx)
    app.cleanup_ctx.append(workers_ctx)
    routes = all_routes()
    routes.install(app)
    add_docs_static(app)
    app[OPENAPI] = build_openapi(routes.routes, title="WeChat campaign backend", version=__version__)
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
        url = embedded.url
        log.info("started embedded redis-server at %s", url)
    client = connect_redis(url, cluster=settings.redis_cluster)
    if isinstance(client, RedisCluster):
        # Learn the slot map now: left to the first commands, a burst of concurrent
        # requests initializes it concurrently and races on its connections.
        await client.initialize()
    app[REDIS] = client
    app[STOCK] = Stock(client)
    app[JOURNEY] = build_journey(client, app[STOCK], settings)
    try:
        yield
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


def build_journey(client: AnyRedis, stock: Stock, settings: Settings) -> Journey:
    """The customer-journey runtime of one process, configured from settings."""
    return Journey(
        client,
        stock,
        JourneyPolicy(
            points_per_yuan=settings.points_per_yuan,
            integration_max_skew=settings.integration_max_skew,
            feed=FeedPolicy(
                audience=settings.feed_weight_audience,
                interest=settings.feed_weight_interest,
                behaviour=settings.feed_weight_behaviour,
                store=settings.feed_weight_store,
                distance=settings.feed_weight_distance,
                ending=settings.feed_weight_ending,
                popularity=settings.feed_weight_popularity,
                joined=settings.feed_weight_joined,
                near_km=settings.feed_near_km,
                ending_soon_days=settings.feed_ending_soon_days,
                cache_seconds=settings.feed_cache_seconds,
                audience_ttl=settings.feed_audience_ttl,
                ranking_seconds=settings.feed_ranking_seconds,
                ranking_entries=settings.feed_ranking_entries,
            ),
        ),
    )


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.database_url.startswith("sqlite://"):
        path = settings.database_url.removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        await apply_migrations(settings.database_url)
    # Our own context rather than tortoise's aiohttp helper, which leaks its connection under
    # pytest-aiohttp (STACK.md).
    ctx = await open_orm(settings.database_url)
    app[ORM] = ctx
    try:
        yield
    finally:
        await ctx.close_connections()


async def _wechat_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    session = aiohttp.ClientSession()
    app[HTTP_SESSION] = session
    app[WECHAT] = MiniProgramClient(
        session=session,
        redis=app[REDIS],
        appid=settings.appid,
        secret=settings.app_secret,
        base_url=settings.wechat_base_url,
        timeout=settings.wechat_timeout,
        max_retries=settings.wechat_max_retries,
    )
    try:
        yield
    finally:
        await session.close()
