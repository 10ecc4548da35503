"""Typed keys for application and request state (no string keys, no globals).

Each key names the real class of its value, so ``app[STOCK]`` is a ``Stock`` to mypy.
The imports are plain (no ``TYPE_CHECKING``): services and ``miniprogram_api`` never
import ``server`` (the import-linter contract), so there is no cycle.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from miniprogram_api.client import MiniProgramClient
from server.dependencies import DatabaseState, Dependency
from server.loop_watch import LoopWatch
from server.policies import Policies
from server.settings import Settings
from services.core import AnyRedis, Principal
from services.experiments import Experiments
from services.feed import Feed
from services.forms import Bargains, GroupBuys, LuckyDraws
from services.journey import Journey
from services.privacy import ErasedCustomers
from services.stock import CouponCache, IpLimiter, Stock

SETTINGS = web.AppKey("settings", Settings)
#: One Redis, or a RedisCluster client (REDIS_CLUSTER=true): the same commands serve both.
# A union is no class, so the type is the annotation, not the second argument.
REDIS: web.AppKey[AnyRedis] = web.AppKey("redis")
#: The database and Redis as this process reached them (server/dependencies.py): the
#: server listens before they answer, so everything that needs them asks these first.
DATABASE = web.AppKey("database", DatabaseState)
REDIS_STATE = web.AppKey("redis_state", Dependency)
#: This process's event-loop watch (server/loop_watch.py); None when LOOP_STALL_MS is 0.
LOOP_WATCH: web.AppKey[LoopWatch | None] = web.AppKey("loop_watch")
HTTP_SESSION = web.AppKey("http_session", aiohttp.ClientSession)
WECHAT = web.AppKey("wechat", MiniProgramClient)
STOCK = web.AppKey("stock", Stock)
COUPON_CACHE = web.AppKey("coupon_cache", CouponCache)
IP_LIMITER = web.AppKey("ip_limiter", IpLimiter)
JOURNEY = web.AppKey("journey", Journey)
#: Group buys (services/forms/group_buy.py): the decision scripts, registered once.
GROUP_BUYS = web.AppKey("group_buys", GroupBuys)
#: Bargains and assists (services/forms/bargain.py): their scripts and runtime.
BARGAINS = web.AppKey("bargains", Bargains)
#: Lucky draws (services/forms/draw.py): their scripts and table cache.
DRAWS = web.AppKey("draws", LuckyDraws)
#: The domain policies handlers pass to services (server/policies.py), built once.
POLICIES = web.AppKey("policies", Policies)
#: The discovery feed's runtime (services/feed/runtime.py): index, audience sets, cached rankings.
FEED = web.AppKey("feed", Feed)
#: Running experiments and the exposure log (services/experiments/exposure.py).
EXPERIMENTS = web.AppKey("experiments", Experiments)
#: Customers whose data was erased: their access tokens are refused (services/privacy/gate.py).
ERASED = web.AppKey("erased", ErasedCustomers)
#: The OpenAPI document, built once when the app is created.
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi", dict)

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
