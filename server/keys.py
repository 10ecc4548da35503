"""Typed keys for application and request state (no string keys, no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from server.dependencies import DatabaseState, Dependency
from server.policies import Policies
from server.settings import Settings
from services.core.principal import Principal

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
#: One Redis, or a RedisCluster client (REDIS_CLUSTER=true): the same commands serve both.
REDIS = web.AppKey("redis", Redis)
#: The database and Redis as this process reached them (server/dependencies.py): the
#: server listens before they answer, so everything that needs them asks these first.
DATABASE = web.AppKey("database", DatabaseState)
REDIS_STATE = web.AppKey("redis_state", Dependency)
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
WECHAT = web.AppKey("wechat", "MiniProgramClient")
STOCK = web.AppKey("stock", "Stock")
COUPON_CACHE = web.AppKey("coupon_cache", "CouponCache")
IP_LIMITER = web.AppKey("ip_limiter", "IpLimiter")
JOURNEY = web.AppKey("journey", "Journey")
#: The domain policies handlers pass to services (server/policies.py), built once.
POLICIES = web.AppKey("policies", Policies)
#: The OpenAPI document, built once when the app is created.
OPENAPI = web.AppKey("openapi", dict)

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
