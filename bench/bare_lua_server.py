"""The ceiling of one Python process for a coupon grab: an aiohttp endpoint that runs the
very grab script of the product (services/stock/grab.lua, the same keys and arguments,
through the same client: ``server.app.connect_redis``, i.e. the same connection pool and
connections, called with ``call_script`` and the claim id
and code from ``services.stock.random_token``, as ours) and nothing else: no auth, no validation, no
eligibility, no IP limiter, no idempotency, no read-your-writes record.

    .venv/bin/python -m bench.bare_lua_server --port P --redis-url URL [--stock S]

``POST /grab/{customer_id}`` → 201 ``{"claim", "code", "left"}``, or 409 ``{"refused"}``
with the script's verdict. Its own coupon (a campaign id no real campaign has), loaded
fresh at start with services/stock/load.lua.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from server.app import connect_redis
from server.event_loop import loop_factory
from services.core import call_script, random_token
from services.stock import IDEMPOTENCY_TTL_SECONDS, RECENT_CLAIMS_KEPT, RECENT_CLAIMS_TTL_MS, CampaignKeys

LUA = Path(__file__).resolve().parent.parent / "services" / "stock"
#: A campaign id far above any the bench's server creates, so the keys never collide.
CAMPAIGN_ID = 999_000_001
TEMPLATE_ID = 1
FACE_VALUE = 1000
#: The per-customer throttle is in the script; set high, as the bench sets our server's.
USER_MAX, USER_WINDOW_MS = 1_000_000, 10_000
KEYS = CampaignKeys(CAMPAIGN_ID)
GRAB: web.AppKey[AsyncScript] = web.AppKey("grab", AsyncScript)


async def load_coupon(redis: Redis, stock: int) -> None:
    """A fresh coupon: stock, limit 1, open from the epoch for a day, a budget that
    covers the stock (so the script takes the same budget branch as a capped campaign)."""
    await redis.delete(KEYS.coupon(TEMPLATE_ID), KEYS.holders(TEMPLATE_ID), KEYS.budget, KEYS.stream)
    load = redis.register_script((LUA / "load.lua").read_text())
    closes = int(time.time() * 1000) + 86_400_000
    await load(
        keys=[KEYS.coupon(TEMPLATE_ID), KEYS.holders(TEMPLATE_ID), KEYS.budget],
        args=[stock, 1, 0, closes, FACE_VALUE, "open", "0", stock * FACE_VALUE],
    )


async def grab(request: web.Request) -> web.Response:
    uid = request.match_info["uid"]
    now_ms = int(time.time() * 1000)
    try:
        reply = await call_script(
            request.app[GRAB],
            keys=[
                KEYS.coupon(TEMPLATE_ID), KEYS.holders(TEMPLATE_ID), KEYS.budget, KEYS.stream,
                KEYS.idempotency(int(uid), TEMPLATE_ID, "-"), KEYS.rate(int(uid)), KEYS.audience,
                KEYS.recent(int(uid)),
            ],
            args=[uid, now_ms, random_token(20), random_token(16), TEMPLATE_ID, IDEMPOTENCY_TTL_SECONDS, USER_MAX,
                  USER_WINDOW_MS, "0", RECENT_CLAIMS_TTL_MS, RECENT_CLAIMS_KEPT],
        )  # fmt: skip
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        # What our server answers too (server/middlewares.py), e.g. when more grabs are in
        # flight than the client's connection pool holds (redis-py's default: 100).
        return web.json_response({"refused": "redis_unavailable"}, status=503)
    verdict = reply[0].decode()
    if verdict == "ok":
        claim, code, _ = reply[1].decode().split(":")
        return web.json_response({"claim": claim, "code": code, "left": int(reply[2])}, status=201)
    return web.json_response({"refused": verdict}, status=409)


def create_app(redis_url: str, stock: int) -> web.Application:
    app = web.Application()

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        # The very client our server makes (server.app.connect_redis): the same pool,
        # connections and timeouts, so the comparison
        # is of everything around the round trip.
        client = connect_redis(redis_url, cluster=False)
        assert isinstance(client, Redis)
        await load_coupon(client, stock)
        app[GRAB] = client.register_script((LUA / "grab.lua").read_text())
        yield
        await client.aclose()

    app.cleanup_ctx.append(redis_ctx)
    app.router.add_post("/grab/{uid:[0-9]+}", grab)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--stock", type=int, default=10_000_000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="asyncio", help="the event loop")
    args = parser.parse_args()
    # The loop our server runs on in the same bench (bench.grab passes it), so the
    # comparison is of the grab, not of the loops.
    new_loop, _ = loop_factory(args.loop == "uvloop")
    web.run_app(
        create_app(args.redis_url, args.stock), host="127.0.0.1", port=args.port, print=None, access_log=None,
        loop=new_loop(),
    )  # fmt: skip


if __name__ == "__main__":
    main()
