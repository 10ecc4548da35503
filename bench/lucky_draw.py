"""Lucky draws under load (issue 17): our endpoint against the bare draw script, measured
in one run on the same machine, then the exactness check.

    .venv/bin/python -m bench.lucky_draw [--customers N] [--seconds T] [--connections 64]
                                         [--paid] [--bare-callers 64]

* ours: ``POST /api/v1/draws`` on the real server (``python -m server``: SQLite, the
  redis-server this bench starts, workers on), driven by wrk (2 threads, bench's
  wrk_report.lua), the N customers in turn. A lucky_draw campaign is built, submitted and
  published through the admin API (REVIEW_LEVELS=0) by an operator made with
  ``python -m server create-admin``; the customers log in through the WeChat emulator.
  The table: a coupon prize (stock 50), a points prize (stock 500), no prize; every draw
  free (free_per_day 100, max_per_day 1000), or with --paid every draw costs 1 point (free_per_day 0, each
  customer given points first through the admin API): the hold, ledger debit and script.
  Each customer's first draw also asks WeChat for the risk rank (cached after).
* bare Lua: the same draw.lua (with draw_pick.lua), keys and arguments, called with
  EVALSHA from this process by C concurrent callers on redis-py, on its own campaign's
  keys: no HTTP, no auth, no eligibility, no risk gate, no points hold: the ceiling of
  the script for one Python process.
* batch sampling: draw_pick.lua alone in batch mode (draw_batch.lua), 10^6 values per
  call: what the sampling itself costs in Redis.

After the runs, once the draws worker drained: the database holds exactly as many draws
as wrk saw 201s (plus at most one per connection in flight when wrk stopped counting),
the coupon prize was issued at most its stock, and every paid draw debited exactly once.
Exit status 1 if any check fails. The machine is shared: read the figures as relative.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.grab import call, start_redis
from bench.harness import ROOT, Figures, login_customers, start_server, wrk
from services.core import text
from services.forms.draw import _LUA, _PICK, DrawKeys
from tests.campaigns.fixtures import campaign_body, coupon_body

ADMIN_USER, ADMIN_PASSWORD = "lottery-bench", "draw-operator-secret-0123"
BARE_CAMPAIGN = 987_654_321


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bare-callers", type=int, default=64)
    parser.add_argument("--paid", action="store_true", help="every draw costs a point (the points hold path)")
    return parser.parse_args()


def draw_spec(paid: bool) -> dict[str, Any]:
    return {
        "prizes": [
            {"key": "first", "kind": "coupon", "weight": 5, "stock": 50, "coupon_index": 0},
            {"key": "pts", "kind": "points", "weight": 95, "stock": 500, "points": 1},
            {"key": "none", "kind": "none", "weight": 900},
        ],
        "sold_out_to": "none", "free_per_day": 0 if paid else 100, "points_cost": 1 if paid else 0,
        "max_per_day": 1000, "time_zone": "Asia/Shanghai",
    }  # fmt: skip


async def launch(base: str, paid: bool) -> int:
    admin = f"{base}/api/v1/admin"
    starts = datetime.now(UTC) - timedelta(minutes=1)
    body = campaign_body(
        type="lucky_draw", starts_at=starts.isoformat(), ends_at=(starts + timedelta(days=1)).isoformat(),
        coupons=[coupon_body(total_stock=50, per_user_limit=100)], draw=draw_spec(paid), budget_limit=None,
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        token = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        campaign = await call(session, "POST", f"{admin}/campaigns", token, body, 201)
        path = f"{admin}/campaigns/{campaign['id']}"
        await call(session, "POST", f"{path}/submit", token, {}, 200)
        await call(session, "POST", f"{path}/publish", token, {}, 200)
        deadline = time.monotonic() + 60
        while (await call(session, "GET", path, token, None, 200))["status"] != "active":
            if time.monotonic() > deadline:
                raise RuntimeError("the campaign did not become active within 60 s")
            await asyncio.sleep(0.25)
    return int(campaign["id"])


async def give_points(base: str, customer_ids: list[int], amount: int) -> None:
    admin = f"{base}/api/v1/admin"
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        token = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        for cid in customer_ids:
            await call(session, "POST", f"{admin}/customers/{cid}/points", token,
                       {"delta": amount, "reason": "bench"}, 201)  # fmt: skip


async def bare_lua(redis_url: str, callers: int, seconds: float) -> tuple[float, float]:
    """Draws/s of the bare script from ``callers`` concurrent coroutines, and its p99 ms."""
    redis = Redis.from_url(redis_url)
    script = redis.register_script(_PICK + (_LUA / "draw.lua").read_text())
    keys = DrawKeys(BARE_CAMPAIGN)
    tag = keys.tag
    await redis.delete(keys.stock)
    await redis.hset(keys.stock, mapping={"first": 10**9, "pts": 10**9, "loaded": 1})
    await redis.hset(f"{tag}:coupon:1", mapping={"stock": 10**9, "limit": 10**9, "face": 100})
    prizes = [3, "first", 5, "coupon", 1, 0, 1, "pts", 95, "points", 0, 1, 1, "none", 900, "none", 0, 0, 0]
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    count = 0

    async def caller(n: int) -> None:
        nonlocal count
        i = 0
        while time.monotonic() < stop:
            uid = n * 1_000_000 + i
            i += 1
            randoms = [secrets.randbits(48) for _ in range(4)]
            started = time.perf_counter()
            await script(
                keys=[keys.stock, keys.day(uid, "2026-01-01"), keys.idempotency(uid, "-"), keys.holds, keys.stream,
                      f"{tag}:claims", f"{tag}:budget", f"{tag}:recent:{uid}", keys.tasks, f"{tag}:coupon:1",
                      f"{tag}:coupon:1:holders"],
                args=[uid, int(time.time() * 1000), "d" + secrets.token_hex(16), "2026-01-01", "0", 86400, 1000,
                      1000, 0, "0", 172800, secrets.token_hex(10), secrets.token_hex(8), 3600000, 50, 3, "",
                      len(randoms), *randoms, *prizes, -1],
            )  # fmt: skip
            latencies.append(time.perf_counter() - started)
            count += 1

    began = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(callers)))
    elapsed = time.monotonic() - began
    await redis.delete(keys.stream, f"{tag}:claims")
    await redis.aclose()
    latencies.sort()
    return count / elapsed, latencies[int(len(latencies) * 0.99)] * 1000


async def batch_rate(redis_url: str) -> float:
    redis = Redis.from_url(redis_url)
    script = redis.register_script(_PICK + (_LUA / "draw_batch.lua").read_text())
    values = [secrets.randbits(48) for _ in range(100_000)]
    started = time.perf_counter()
    for _ in range(10):
        await script(keys=[], args=[3, 5, 95, 900, *values])
    elapsed = time.perf_counter() - started
    await redis.aclose()
    return 1_000_000 / elapsed


def checks(db_path: str, campaign_id: int, created: int, connections: int, paid: bool) -> list[tuple[bool, str]]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        drawn = db.execute("SELECT COUNT(*) FROM lucky_draws WHERE campaign_id = ?", (campaign_id,)).fetchone()[0]
        firsts = db.execute(
            "SELECT COUNT(*) FROM lucky_draws WHERE campaign_id = ? AND prize_key = 'first'", (campaign_id,)
        ).fetchone()[0]
        vouchers = db.execute("SELECT COUNT(*) FROM vouchers WHERE campaign_id = ?", (campaign_id,)).fetchone()[0]
        debits = db.execute(
            "SELECT COUNT(*) FROM points_entries WHERE campaign_id = ? AND ref LIKE 'draw:%'", (campaign_id,)
        ).fetchone()[0]
        refunds = db.execute(
            "SELECT COUNT(*) FROM points_entries WHERE campaign_id = ? AND ref LIKE 'draw-refund:%'", (campaign_id,)
        ).fetchone()[0]
        paid_draws = db.execute(
            "SELECT COUNT(*) FROM lucky_draws WHERE campaign_id = ? AND entry = 'points'", (campaign_id,)
        ).fetchone()[0]
    out = [
        (created <= drawn <= created + connections,
         f"draws in the database {drawn}, wrk saw {created} created (+ up to {connections} in flight)"),
        (firsts <= 50 and vouchers == firsts, f"coupon prizes {firsts} (stock 50), vouchers {vouchers}"),
    ]  # fmt: skip
    if paid:
        out.append((debits - refunds == paid_draws, f"paid draws {paid_draws}, debits {debits}, refunds {refunds}"))
    return out


async def wait_drained(redis_url: str, campaign_id: int, limit: float = 120) -> None:
    redis = Redis.from_url(redis_url)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        left = await redis.xlen(DrawKeys(campaign_id).stream) + await redis.xlen(f"{{cmp:{campaign_id}}}:claims")
        if left == 0:
            break
        await asyncio.sleep(0.5)
    await redis.aclose()


def main() -> int:
    args = parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = start_redis(stack)
        env = {"REDIS_URL": redis_url, "REVIEW_LEVELS": "0", "GRAB_IP_RATE": "1000000", "GRAB_IP_BURST": "10000000",
               "ACCESS_TOKEN_TTL": "7200", "SCHEDULER_INTERVAL": "1"}  # fmt: skip
        server = start_server(env)
        stack.callback(server.stop)
        assert server.data_dir is not None and server.process is not None
        server_env = {**os.environ, **env, "DATA_DIR": str(server.data_dir), "ADMIN_PASSWORD": ADMIN_PASSWORD}
        subprocess.run(
            [sys.executable, "-m", "server", "create-admin", "--username", ADMIN_USER, "--role", "operator"],
            cwd=ROOT, env=server_env, check=True, stdout=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        campaign_id = asyncio.run(launch(server.url, args.paid))
        tokens = asyncio.run(login_customers(server.url, args.customers, prefix="o_draw_bench"))
        db_path = str(server.data_dir / "app.sqlite3")
        if args.paid:
            with contextlib.closing(sqlite3.connect(db_path)) as db:
                ids = [r[0] for r in db.execute("SELECT id FROM customers WHERE openid LIKE 'o_draw_bench_%'")]
            asyncio.run(give_points(server.url, ids, 100_000))
        body = json.dumps({"campaign_id": campaign_id})
        lines = [f"POST\t/api/v1/draws\tBearer {t}\t{body}" for t in tokens]
        # Warm-up (risk ranks cached, scripts loaded), unmeasured.
        warm = wrk("warm-up", server.url, lines, args.connections, 2)
        ours: Figures = wrk("ours: POST /api/v1/draws", server.url, lines, args.connections, args.seconds)
        bare_rate, bare_p99 = asyncio.run(bare_lua(redis_url, args.bare_callers, args.seconds))
        sampling = asyncio.run(batch_rate(redis_url))
        asyncio.run(wait_drained(redis_url, campaign_id))
        print(ours.line())
        print(f"{'bare Lua: draw.lua via EVALSHA':<34} c={args.bare_callers:<4} {bare_rate:>9.0f} draws/s  "
              f"p99 {bare_p99:6.2f} ms")  # fmt: skip
        print(f"{'batch sampling (draw_pick.lua)':<34} {sampling:>16.0f} samples/s in Redis")
        print(f"ours / bare: {ours.rate / bare_rate:.0%}" + ("  (paid draws)" if args.paid else "  (free draws)"))
        redis = Redis.from_url(redis_url)

        async def leftover() -> dict[str, str]:
            found = await redis.hgetall(DrawKeys(campaign_id).stock)
            await redis.aclose()
            return {text(k): text(v) for k, v in found.items()}

        print("prize stock left:", asyncio.run(leftover()))
        # Both wrk runs' 201s (warm-up and measured) are in the database.
        created = warm.requests - warm.non2xx + ours.requests - ours.non2xx
        results = checks(db_path, campaign_id, created, 2 * args.connections, args.paid)
        if ours.non2xx or warm.non2xx:
            results.append((False, f"{ours.non2xx + warm.non2xx} answers were not 2xx"))
        for ok, what in results:
            print(("ok   " if ok else "FAIL ") + what)
        return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
