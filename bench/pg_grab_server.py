"""The PostgreSQL grab, done right: what the malls do, without their races. An aiohttp
endpoint with an asyncpg pool that decides each grab in one transaction:

    UPDATE coupon SET stock = stock - 1 WHERE id = $1 AND stock > 0     -- no row: sold out
    INSERT INTO claims (customer_id, coupon_id) ... ON CONFLICT DO NOTHING  -- no row: limit
                                                  (the decrement is rolled back)

The conditional update cannot oversell (the row lock serialises decrements and the
condition is re-checked under it) and the unique (customer_id, coupon_id) constraint is
the per-user limit of 1.

    .venv/bin/python -m bench.pg_grab_server --port P --dsn DSN [--stock S] [--pool N]

``POST /grab/{customer_id}`` → 201 ``{"claim", "left"}``, or 409 ``{"refused"}``.
The tables are created afresh at start.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from server.event_loop import loop_factory

COUPON_ID = 1
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)

SCHEMA = """
DROP TABLE IF EXISTS claims, coupon;
CREATE TABLE coupon (id integer PRIMARY KEY, stock integer NOT NULL CHECK (stock >= 0));
CREATE TABLE claims (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    coupon_id integer NOT NULL REFERENCES coupon (id),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, coupon_id)
);
"""
DECREMENT = "UPDATE coupon SET stock = stock - 1 WHERE id = $1 AND stock > 0 RETURNING stock"
CLAIM = (
    "INSERT INTO claims (customer_id, coupon_id) VALUES ($1, $2) "
    "ON CONFLICT (customer_id, coupon_id) DO NOTHING RETURNING id"
)


class Refused(Exception):
    """Raised inside the transaction to roll it back; carries the verdict."""

    def __init__(self, verdict: str) -> None:
        super().__init__(verdict)
        self.verdict = verdict


async def grab(request: web.Request) -> web.Response:
    uid = int(request.match_info["uid"])
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            left = await conn.fetchval(DECREMENT, COUPON_ID)
            if left is None:
                raise Refused("sold_out")
            claim = await conn.fetchval(CLAIM, uid, COUPON_ID)
            if claim is None:
                raise Refused("limit")  # leaving the block rolls the decrement back
    except Refused as refused:
        return web.json_response({"refused": refused.verdict}, status=409)
    return web.json_response({"claim": claim, "left": left}, status=201)


def create_app(dsn: str, stock: int, pool_size: int) -> web.Application:
    app = web.Application()

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
            await conn.execute("INSERT INTO coupon (id, stock) VALUES ($1, $2)", COUPON_ID, stock)
        app[POOL] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/grab/{uid:[0-9]+}", grab)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--stock", type=int, default=10_000_000)
    parser.add_argument("--pool", type=int, default=5, help="asyncpg connections (one hot row: few is best)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="asyncio", help="the event loop")
    args = parser.parse_args()
    # The loop our server runs on in the same bench (bench.grab passes it), so the
    # comparison is of the grab, not of the loops.
    new_loop, _ = loop_factory(args.loop == "uvloop")
    web.run_app(
        create_app(args.dsn, args.stock, args.pool), host="127.0.0.1", port=args.port, print=None, access_log=None,
        loop=new_loop(),
    )  # fmt: skip


if __name__ == "__main__":
    main()
