"""Typed keys for application and request state (no string keys, no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from server.settings import Settings
from services.core.principal import Principal

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
#: One Redis, or a RedisCluster client (REDIS_CLUSTER=true): the same commands serve both.
REDIS = web.AppKey("redis", Redis)
ORM = web.AppKey("orm", "TortoiseContext")
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
WECHAT = web.AppKey("wechat", "MiniProgramClient")
STOCK = web.AppKey("stock", "Stock")
COUPON_CACHE = web.AppKey("coupon_cache", "CouponCache")
IP_LIMITER = web.AppKey("ip_limiter", "IpLimiter")
JOURNEY = web.AppKey("journey", "Journey")
#: The discovery feed's runtime (services/feed/runtime.py): index, audience sets, cached rankings.
FEED = web.AppKey("feed", "Feed")
#: The OpenAPI document, built once when the app is created.
OPENAPI = web.AppKey("openapi", dict)

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
