"""Coupon stock in Redis: the atomic grab, its Lua scripts, the claims stream to the
database, the coupon cache, reconciliation and the IP limiter on the grab.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.stock.claims import ClaimEntry, ClaimsBacklog, ClaimsWorker, backlog, persist
from services.stock.coupon_cache import CouponCache, CouponInfo
from services.stock.exclusive import ExclusiveMarks
from services.stock.gate import IDEMPOTENCY_TTL_SECONDS, Claim, GrabPolicy, Stock, StockSource, stock_left, stocks_left
from services.stock.hot import home_bucket
from services.stock.ip_limiter import IpLimiter, retry_after
from services.stock.keys import CONSUMER_GROUP, RECENT_CLAIMS_KEPT, RECENT_CLAIMS_TTL_MS, STREAMS_REGISTRY, CampaignKeys

__all__ = [
    "CONSUMER_GROUP",
    "IDEMPOTENCY_TTL_SECONDS",
    "RECENT_CLAIMS_KEPT",
    "RECENT_CLAIMS_TTL_MS",
    "STREAMS_REGISTRY",
    "CampaignKeys",
    "Claim",
    "ClaimEntry",
    "ClaimsBacklog",
    "ClaimsWorker",
    "CouponCache",
    "CouponInfo",
    "ExclusiveMarks",
    "GrabPolicy",
    "IpLimiter",
    "Stock",
    "StockSource",
    "backlog",
    "home_bucket",
    "persist",
    "retry_after",
    "stock_left",
    "stocks_left",
]
