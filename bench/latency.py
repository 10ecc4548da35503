"""Latency measured open-loop (issue 19): at a fixed arrival rate, each request timed from
its scheduled send, at stated fractions of the endpoint's measured capacity.

    .venv/bin/python -m bench.latency [grab|join] [--customers 3000] [--campaigns 40] [--per-customer 50]
                                      [--workers 1[,2...]] [--step-seconds 4] [--seconds 10]
                                      [--fractions 0.5,0.8] [--max-rate 8000] [--timeout 1]
                                      [--p99-bound 100] [--postgres]

The coupon grab, ``POST /api/v1/coupons/{id}/grab``, on the real server (``python -m
server``, embedded defaults: SQLite unless ``--postgres`` (a PostgreSQL cluster the bench
starts, tests/infra.py; with several processes SQLite's one writer makes the claims
workers and logins wait on each other), the claims worker in-process; ``--workers N``
passes ``WORKERS=N``) against its ceiling in the same run, the bare
Lua endpoint (bench.bare_lua_server: the same script, no checks) on the same Redis.
``--workers 1,2`` profiles each in turn in the same run (a fresh server, Redis and
coupon each) and prints the scaling ratio of their capacities. The WeChat emulator runs
standalone (bench.harness.start_emulator), so a login code minted by one server process
is known to whichever process answers the login:

1. set-up as bench.grab does (an operator from ``create-admin``, a live flash sale with
   one coupon, customers logged in through the emulator), except that each customer may
   hold ``--per-customer`` vouchers, so a few thousand logins feed a long run;
2. **capacity**: bench.open_loop.find_capacity, ``--step-seconds`` runs from 250/s,
   doubling until a rate fails, then three bisections. A rate is *served* when under 1%
   of its requests fail and its p99 is under ``--p99-bound`` ms; a request fails when it
   is not answered 201 within ``--timeout`` seconds of its scheduled send (a customer's
   tap, not a socket's turn);
3. **latency**: ``--seconds`` runs at each of ``--fractions`` of that capacity: p50,
   p99, p99.9 and the server's CPU per request (the process and its children, /proc);
4. the bare endpoint's CPU per request at the same rates (its capacity is beyond what one
   generator process sends here, so it is the CPU ratio that compares them);
5. Redis's own CPU per grab (``INFO cpu`` around one more run at the highest fraction,
   the claims worker's reads and deletes of those grabs included): what bounds one
   Redis master;
6. the oversell check of bench.grab after the claims worker drained.

``join``: ``POST /api/v1/campaigns/{id}/join`` the same way over ``--campaigns`` live
campaigns without coupons (each request a customer and campaign not joined before),
against ``/healthz`` at the same rates.

The generator (bench/open_loop.py) is its own process; its dispatch lag is printed with
each run: when it is large the run measured the generator, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from bench.grab import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Coupon,
    OurServer,
    call,
    create_operator,
    drain,
    launch_campaign,
    oversell_checks,
    read_ledger,
    say,
    start_helper,
    start_ours,
    start_postgres,
    start_redis,
)
from bench.harness import emulator_env, login_customers, start_emulator
from bench.open_loop import P99_BOUND_MS, Endpoint, Profile, measure, profile, table, wait_idle
from tests.campaigns.fixtures import campaign_body


@dataclass
class Report:
    workers: int
    grab: Profile
    checks: list[tuple[bool, str]]
    login_s: float
    loads: tuple[float, float]
    #: Redis CPU (ms) per grab at the highest fraction, and that run's rate.
    redis_ms: float
    redis_at: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("endpoint", nargs="?", choices=("grab", "join"), default="grab")
    parser.add_argument("--customers", type=int, default=3000, help="customers logged in through the emulator")
    parser.add_argument("--campaigns", type=int, default=40, help="join: campaigns each customer joins in turn")
    parser.add_argument("--per-customer", type=int, default=50, help="the coupon's per-customer limit")
    parser.add_argument("--postgres", action="store_true", help="our server on PostgreSQL, not SQLite")
    parser.add_argument("--workers", default="1", help="WORKERS for our server; comma-separated: each in turn")
    parser.add_argument("--step-seconds", type=float, default=4.0, help="length of each capacity-search run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--fractions", default="0.5,0.8", help="of the capacity, comma-separated")
    parser.add_argument("--max-rate", type=float, default=8000.0, help="the capacity search stops here")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds; an answer later than this fails")
    parser.add_argument(
        "--p99-bound", type=float, default=P99_BOUND_MS, help="ms; a rate whose p99 is above this is not served"
    )
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.fractions = [float(f) for f in args.fractions.split(",")]
    return args


async def launch_joinable(base: str, count: int) -> list[int]:
    """``count`` live campaigns without coupons or caps (what a join costs, not a grab),
    built, submitted (REVIEW_LEVELS=0) and published through the admin API."""
    admin = f"{base}/api/v1/admin"
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        token = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        starts = datetime.now(UTC) + timedelta(seconds=3)
        ids = []
        for _ in range(count):
            body = campaign_body(
                starts_at=starts.isoformat(), ends_at=(starts + timedelta(days=1)).isoformat(), coupons=[],
                budget_limit=None,
            )  # fmt: skip
            campaign = await call(session, "POST", f"{admin}/campaigns", token, body, 201)
            await call(session, "POST", f"{admin}/campaigns/{campaign['id']}/submit", token, {}, 200)
            await call(session, "POST", f"{admin}/campaigns/{campaign['id']}/publish", token, {}, 200)
            ids.append(campaign["id"])
        for campaign_id in ids:
            path = f"{admin}/campaigns/{campaign_id}"
            while (await call(session, "GET", path, token, None, 200))["status"] != "active":
                await asyncio.sleep(0.25)
    return ids


def serve(stack: contextlib.ExitStack, args: argparse.Namespace, workers: int) -> tuple[OurServer, str, str]:
    """A fresh Redis (and PostgreSQL with ``--postgres``) and our server with ``workers``
    processes, pointed at a standalone WeChat emulator; returns the server, the Redis URL
    and the emulator's URL."""
    wechat = start_emulator(stack)
    redis_url = start_redis(stack)
    database_url = start_postgres(stack, ["app"]).url("app") if args.postgres else None
    # start_server passes its environment on: WORKERS and the emulator reach `python -m server`.
    os.environ.update({"WORKERS": str(workers), **emulator_env(wechat)})
    return start_ours(stack, redis_url, database_url, False, "uvloop"), redis_url, wechat


def database(args: argparse.Namespace) -> str:
    return "PostgreSQL" if args.postgres else "SQLite"


def run_join(args: argparse.Namespace, workers: int, directory: Path) -> int:
    """Joins open-loop: each request a (customer, campaign) pair not joined before, the
    campaigns in turn for each customer; ceiling ``/healthz`` at the same rates."""
    with contextlib.ExitStack() as stack:
        ours, _, wechat = serve(stack, args, workers)
        create_operator(ours)
        campaigns = asyncio.run(launch_joinable(ours.url, args.campaigns))
        tokens = asyncio.run(login_customers(ours.url, args.customers, prefix="o_join", wechat=wechat))
        say(f"{len(campaigns)} campaigns live, {len(tokens):,} customers logged in")
        lines = [f"POST\t/api/v1/campaigns/{c}/join\tBearer {t}\t-" for t in tokens for c in campaigns]
        join = Endpoint("join", ours.url, ours.pid, lines, ok=(201,))
        healthz = Endpoint("/healthz", ours.url, ours.pid, ["GET\t/healthz\t-\t-"])
        load_before = os.getloadavg()[0]
        got = profile(
            join, healthz, start=250, max_rate=args.max_rate, step_seconds=args.step_seconds, seconds=args.seconds,
            fractions=args.fractions, timeout=args.timeout, directory=directory, p99_bound_ms=args.p99_bound, say=say,
        )  # fmt: skip
    wrapped = join.offset > len(lines)
    print(
        f"join, open-loop: our server with WORKERS={workers} on {database(args)}; {len(lines):,} (customer, campaign) "
        f"pairs, {join.offset:,} requests{' (MORE than pairs: later ones re-joined, answered 200)' if wrapped else ''}"
        f"; a request fails unless answered 201 within {args.timeout:g} s of its scheduled send; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores"
    )
    print("\n".join(table("POST /api/v1/campaigns/{id}/join", "/healthz", got)))
    return 0 if not wrapped else 1


def run_bench(args: argparse.Namespace, workers: int, directory: Path) -> Report:
    with contextlib.ExitStack() as stack:
        ours, redis_url, wechat = serve(stack, args, workers)
        create_operator(ours)
        stock = args.customers * args.per_customer
        coupon: Coupon = asyncio.run(launch_campaign(ours.url, stock, args.per_customer))
        started = time.monotonic()
        tokens = asyncio.run(login_customers(ours.url, args.customers, wechat=wechat))
        login_s = time.monotonic() - started
        say(f"WORKERS={workers}: {len(tokens):,} customers logged in in {login_s:.0f} s; coupon stock {stock:,}")
        path = f"/api/v1/coupons/{coupon.template_id}/grab"
        # Customer after customer, round after round: a customer comes back only once
        # every other customer has grabbed (their per-customer limit allows it).
        mine = Endpoint("grab", ours.url, ours.pid, [f"POST\t{path}\tBearer {t}\t-" for t in tokens], ok=(201,))
        bare_url, bare_pid = start_helper(
            stack, "bench.bare_lua_server", "uvloop", "--redis-url", redis_url, "--stock", str(10**7)
        )
        ids = range(1, 10**6)
        bare = Endpoint("bare Lua", bare_url, bare_pid, [f"POST\t/grab/{uid}\t-\t-" for uid in ids], ok=(201,))
        load_before = os.getloadavg()[0]

        def settle() -> None:  # the claims worker persists a run's grabs before the next
            asyncio.run(drain(redis_url, coupon))

        got = profile(
            mine, bare, start=250, max_rate=args.max_rate, step_seconds=args.step_seconds, seconds=args.seconds,
            fractions=args.fractions, timeout=args.timeout, directory=directory, settle=settle,
            p99_bound_ms=args.p99_bound, say=say,
        )  # fmt: skip
        # One more run at the highest fraction (at least 100/s: a capacity search that
        # served nothing still tells Redis's cost per grab).
        rate = max(100.0, got.capacity.rate * max(args.fractions))
        wait_idle(ours.pid)
        say(f"Redis CPU per grab: {rate:,.0f}/s for {args.seconds:.0f} s")
        redis_before = asyncio.run(redis_cpu_seconds(redis_url))
        extra = measure(mine, rate=rate, seconds=args.seconds, timeout=args.timeout, directory=directory)
        settle()
        redis_ms = (asyncio.run(redis_cpu_seconds(redis_url)) - redis_before) * 1000 / max(1, extra.result.sent)
        loads = (load_before, os.getloadavg()[0])
        _, side = asyncio.run(drain(redis_url, coupon))
        ledger = asyncio.run(read_ledger(ours.database_url, coupon, args.per_customer))
        runs = [*got.capacity.steps, *got.at.values(), *([got.warm_up] if got.warm_up else []), extra]
        created = sum(m.result.statuses.get(201, 0) for m in runs)
        checks = oversell_checks(ledger, side, created, args.per_customer)
        return Report(workers, got, checks, login_s, loads, redis_ms, rate)


async def redis_cpu_seconds(url: str) -> float:
    """The Redis server's own CPU seconds so far (``INFO cpu``, user + system)."""
    redis = Redis.from_url(url)
    try:
        info = await redis.info("cpu")
    finally:
        await redis.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def report(args: argparse.Namespace, out: Report) -> None:
    print(
        f"coupon grab, open-loop: our server with WORKERS={out.workers} on {database(args)}, a redis-server, the "
        f"WeChat emulator standalone; {args.customers:,} customers x {args.per_customer} vouchers each; a request "
        f"fails unless answered 201 within {args.timeout:g} s of its scheduled send; {os.cpu_count()} cores, load "
        f"average {out.loads[0]:.2f} before, {out.loads[1]:.2f} after"
    )
    print("\n".join(table("POST /api/v1/coupons/{id}/grab", "bare Lua", out.grab)))
    print(
        f"Redis CPU per grab at {out.redis_at:,.0f}/s: {out.redis_ms:.3f} ms (claims worker's part included): one "
        f"core of a Redis master runs ~{1000 / max(out.redis_ms, 1e-9):,.0f} grabs/s"
    )
    print("oversell check (after the claims worker drained):")
    print("\n".join(f"  {'ok  ' if ok else 'FAIL'}  {text}" for ok, text in out.checks))


def scaling(outs: list[Report]) -> list[str]:
    """Each run's capacity against the first's (``--workers 1,2``: the scaling ratio)."""
    first = outs[0].grab.capacity.rate

    def ratio(rate: float) -> str:
        return f"{rate / first:.2f}x the first run" if first > 0 else "no ratio (the first run served nothing)"

    return [f"WORKERS={o.workers}: capacity {o.grab.capacity.rate:,.0f}/s, {ratio(o.grab.capacity.rate)}" for o in outs]


def main() -> int:
    args = parse_args()
    status = 0
    outs: list[Report] = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="wxc-bench-open-") as directory:
            if args.endpoint == "join":
                status |= run_join(args, workers, Path(directory))
                continue
            out = run_bench(args, workers, Path(directory))
        report(args, out)
        outs.append(out)
        status |= 0 if all(ok for ok, _ in out.checks) else 1
    if len(outs) > 1:
        print("scaling (same run):")
        print("\n".join(f"  {line}" for line in scaling(outs)))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
