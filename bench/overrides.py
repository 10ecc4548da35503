"""What a library override saves on the coupon grab's path (issue 13), measured against
the plain library in the same run.

    .venv/bin/python -m bench.overrides --plain connection [--pairs 3] [--seconds 5] [--customers 120000]

Two of our servers on one Redis (the embedded mode's settings) and one SQLite file, their
background workers in a `python -m server worker` beside them (so neither server pays for
the claims worker): "as is" (`python -m server`) and "plain" (`python -m bench.plain`
with ``BENCH_PLAIN`` = the overrides named, see there). One flash sale (limit 1 per
customer); customers are inserted straight into the database and their access tokens
minted with the server's secret (logging tens of thousands in through the emulator takes
minutes). wrk (2 threads, 64 connections, bench/wrk_grab.lua) then drives the two in
turn, as is / plain, ``--pairs`` times, every run with customers no run used before
(so every token is new to the server, as in bench.grab), the claims stream drained after
each run. Printed: each run's CPU per request of the server process (``/proc``), and the
medians; the saving is 1 - as is / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.accounts.tokens import issue_access_token

from bench.grab import (
    SERVER_ENV,
    Coupon,
    OurServer,
    Run,
    Target,
    create_operator,
    drain,
    launch_campaign,
    say,
    start_ours,
    start_redis,
    stop_process,
    wait_for_port,
    wrk,
)
from bench.harness import ROOT, free_port
from server.settings import DEFAULT_SECRET
from services.core.principal import Principal


def start_plain(stack: contextlib.ExitStack, ours: OurServer, plain: str, loop: str) -> tuple[str, int]:
    """A second server on the first one's database and Redis, with the named overrides
    replaced by the plain library, and no background workers of its own."""
    port = free_port()
    env = {
        **os.environ, **SERVER_ENV, **ours.env, "RUN_WORKERS": "false", "BENCH_PLAIN": plain,
        "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
        "UVLOOP": "true" if loop == "uvloop" else "false",
    }  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "bench.plain"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    stack.callback(stop_process, process)
    wait_for_port(port, process, "the plain server")
    return f"http://127.0.0.1:{port}", process.pid


def mint_customers(database_url: str, count: int) -> list[str]:
    """``count`` customers inserted into the server's SQLite file; their access tokens."""
    path = Path(database_url.removeprefix("sqlite://"))
    db = sqlite3.connect(path, timeout=30)
    try:
        first = (db.execute("SELECT COALESCE(MAX(id), 0) FROM customers").fetchone()[0]) + 1
        now = datetime.now(UTC).isoformat(sep=" ")
        rows = [(first + n, f"o_ab_{n}", f"ab {n}", "[]", None, None, "bronze", now) for n in range(count)]
        db.executemany(
            "INSERT INTO customers (id, openid, nickname, interest_tags, city, preferred_store_id, membership_tier,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.commit()
    finally:
        db.close()
    return [issue_access_token(DEFAULT_SECRET, Principal("customer", cid), 7200) for cid, *_ in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", required=True, help="comma-separated BENCH_PLAIN names (bench/plain.py)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=120_000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = start_redis(stack)
        ours = start_ours(stack, redis_url, None, worker_apart=True, loop=args.loop)
        create_operator(ours)
        coupon: Coupon = asyncio.run(launch_campaign(ours.url, args.customers))
        tokens = mint_customers(ours.database_url, args.customers)
        say(f"campaign {coupon.campaign_id} active; {len(tokens):,} customers minted")
        plain_url, plain_pid = start_plain(stack, ours, args.plain, args.loop)
        path = f"/api/v1/coupons/{coupon.template_id}/grab"
        lines = [f"POST\t{path}\tBearer {t}\t-" for t in tokens]
        a = Target("ours", "as is", ours.url, ours.pid, lines)
        b = Target("plain", f"plain: {args.plain}", plain_url, plain_pid, lines)
        runs: dict[str, list[Run]] = {"ours": [], "plain": []}
        offset = 0
        schedule = [("warm", a), ("warm", b)] + [("run", t) for _ in range(args.pairs) for t in (a, b)]
        for kind, target in schedule:
            target.offset = offset  # customers no run used before, whichever server
            run = wrk(target, args.connections, args.warmup if kind == "warm" else args.seconds)
            offset = target.offset
            asyncio.run(drain(redis_url, coupon))
            say(f"{kind} {target.label}: {run.rate:,.0f} grabs/s, CPU {run.cpu_ms:.3f} ms/req, {run.answers}")
            if kind == "run":
                runs[target.key].append(run)
            if offset >= len(lines):
                raise SystemExit("out of customers: raise --customers")
    load = os.getloadavg()[0]
    print(f"grab A/B, plain = {args.plain}: {args.pairs} pairs of {args.seconds:.0f} s, {args.connections} "
          f"connections, {args.loop}; load average (1 min) at the end {load:.2f}")  # fmt: skip
    for key, label in (("ours", "as is"), ("plain", f"plain ({args.plain})")):
        cpu = [r.cpu_ms for r in runs[key]]
        rates = [r.rate for r in runs[key]]
        print(f"  {label:<32} CPU ms/req {' '.join(f'{c:.3f}' for c in cpu)}  median {statistics.median(cpu):.3f}"
              f"  grabs/s median {statistics.median(rates):,.0f}")  # fmt: skip
    mine = statistics.median(r.cpu_ms for r in runs["ours"])
    plain = statistics.median(r.cpu_ms for r in runs["plain"])
    pairs = [1 - x.cpu_ms / y.cpu_ms for x, y in zip(runs["ours"], runs["plain"], strict=True)]
    print(f"  saving of the override(s): {1 - mine / plain:+.1%} of the plain CPU per request (medians); "
          f"per pair {' '.join(f'{p:+.1%}' for p in pairs)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
