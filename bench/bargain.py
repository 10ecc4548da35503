"""Bargain helps under load (issue 17): our full help endpoint against the bare help
script, measured in one run on the same machine, then the books checked.

    .venv/bin/python -m bench.bargain [--helpers H] [--bargains B] [--connections C] [--seconds T]

* ours: ``POST /api/v1/bargains/{id}/help`` on the real server (bench.harness.start_server,
  SQLite, workers in-process, a redis-server the bench starts): token check, the risk
  gate (WeChat's rank through the emulator, cached per helper), the campaign's phase, the
  help script, the answer. A ``bargain`` campaign (cuts of 1-10 fen from ¥10,000, so no
  bargain finishes; ``help_limit`` 100) is built, submitted and published through the
  admin API; H customers log in through the emulator and B of them start a bargain;
  every (helper, bargain) pair but a helper's own is one help, issued by C concurrent
  aiohttp requests from this process until the pairs run out or T seconds pass.
* bare Lua: the same script (services/forms/bargain_help.lua) with the same keys and
  arguments, called with EVALSHA from this process by C concurrent tasks on a campaign of
  its own: no HTTP, no auth, no checks. The ceiling of one Python client on this Redis.

After the runs: the decided helps are drained into the database by the server's worker,
then the books: one ``bargain_cuts`` row per 201, and per bargain the sum of its cuts
equals its start price minus its price in Redis. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.grab import ADMIN_PASSWORD, ADMIN_USER, call, create_operator, say, start_ours, start_redis
from bench.harness import cpu_seconds, login_customers
from services.forms import BargainKeys
from tests.campaigns.fixtures import campaign_body, coupon_body

START_PRICE = 1_000_000  # fen: no bargain reaches the floor in a run
HELP_SCRIPT = Path(__file__).resolve().parent.parent / "services" / "forms" / "bargain_help.lua"
#: The bare script's campaign (ids no real campaign has here).
BARE_CAMPAIGN = 900_000_001


@dataclass
class Run:
    label: str
    connections: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_ms: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def line(self) -> str:
        answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.statuses.items()))
        cpu = f"  server CPU {self.cpu_ms:.3f} ms/help" if self.cpu_ms else ""
        return (
            f"{self.label:<28} c={self.connections:<4} {self.rate:>8.0f} helps/s  p50 {self.pct(0.5):6.2f} ms  "
            f"p99 {self.pct(0.99):6.2f} ms  ({self.requests:,} in {self.seconds:.1f} s; {answers}){cpu}"
        )


def bargain_campaign() -> dict[str, Any]:
    starts = datetime.now(UTC) + timedelta(seconds=3)
    return campaign_body(
        type="bargain", starts_at=starts.isoformat(), ends_at=(starts + timedelta(days=1)).isoformat(),
        coupons=[coupon_body(total_stock=1000, face_value=START_PRICE - 100)], budget_limit=None,
        bargain={"start_price": START_PRICE, "floor_price": 100, "cut_min": 1, "cut_max": 10, "help_limit": 100,
                 "hours": 24},
    )  # fmt: skip


async def launch(base: str) -> int:
    admin = f"{base}/api/v1/admin"
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        token = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        campaign = await call(session, "POST", f"{admin}/campaigns", token, bargain_campaign(), 201)
        path = f"{admin}/campaigns/{campaign['id']}"
        await call(session, "POST", f"{path}/submit", token, {}, 200)
        await call(session, "POST", f"{path}/publish", token, {}, 200)
        deadline = time.monotonic() + 60
        while (await call(session, "GET", path, token, None, 200))["status"] != "active":
            if time.monotonic() > deadline:
                raise RuntimeError("the campaign did not become active within 60 s")
            await asyncio.sleep(0.25)
    return int(campaign["id"])


async def start_bargains(base: str, campaign_id: int, owners: list[str]) -> list[int]:
    async with aiohttp.ClientSession() as session:
        out = []
        for token in owners:
            body = await call(session, "POST", f"{base}/api/v1/bargains", token, {"campaign_id": campaign_id}, 201)
            out.append(int(body["bargain"]["id"]))
        return out


async def drive(run: Run, jobs: list[Any], one: Any, seconds: float) -> None:
    """``run.connections`` tasks take jobs in order until none are left or time is up."""
    queue = iter(jobs)
    stop_at = time.monotonic() + seconds

    async def lane() -> None:
        for job in queue:
            if time.monotonic() > stop_at:
                return
            started = time.perf_counter()
            run.statuses[await one(job)] += 1
            run.latencies_ms.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(run.connections)))
    run.seconds = time.perf_counter() - began


async def run_ours(base: str, pid: int, tokens: list[str], bargains: list[int], owners: int, args: Any) -> Run:
    # Helper h helps bargain b unless b is h's own (owners are the first customers), in
    # bargain-major order, so concurrent requests hit one bargain at a time mostly.
    pairs = [(h, b) for b, h in itertools.product(range(len(bargains)), range(len(tokens))) if h != b or b >= owners]
    run = Run("ours (HTTP, full checks)", args.connections)
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(pair: tuple[int, int]) -> int:
            h, b = pair
            headers = {"Authorization": f"Bearer {tokens[h]}"}
            async with session.post(f"{base}/api/v1/bargains/{bargains[b]}/help", headers=headers) as resp:
                await resp.read()
                return resp.status

        cpu_before = cpu_seconds(pid)
        await drive(run, pairs, one, args.seconds)
        run.cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(1, run.requests)
    return run


async def run_bare(redis_url: str, helpers: int, bargains: int, args: Any) -> Run:
    redis = Redis.from_url(redis_url, max_connections=args.connections)
    script = redis.register_script(HELP_SCRIPT.read_text())
    now = datetime.now(UTC)
    for b in range(1, bargains + 1):
        keys = BargainKeys(BARE_CAMPAIGN, b)
        await redis.delete(keys.state, keys.helpers, keys.cuts)
        await redis.hset(keys.state, mapping={
            "id": b, "owner": 0, "mode": "bargain", "floor": 100, "price": START_PRICE, "min": 1, "max": 10,
            "need": 0, "limit": 100, "exp": int((now + timedelta(days=1)).timestamp() * 1000), "n": 0,
            "seed": secrets.token_hex(16),
        })  # fmt: skip
    keys = BargainKeys(BARE_CAMPAIGN, 1)
    await redis.delete(keys.helps, keys.stream)
    await redis.set(keys.helps_loaded, "1")
    pairs = [(h, b) for b, h in itertools.product(range(1, bargains + 1), range(1, helpers + 1))]
    run = Run("bare Lua (EVALSHA, no HTTP)", args.connections)
    now_ms = int(now.timestamp() * 1000)

    async def one(pair: tuple[int, int]) -> int:
        h, b = pair
        reply = await script(keys=BargainKeys(BARE_CAMPAIGN, b).all(), args=[h, now_ms])
        return 201 if reply[0] == b"ok" else 409

    try:
        await drive(run, pairs, one, args.seconds)
        await redis.delete(keys.stream, keys.helps, keys.helps_loaded)
    finally:
        await redis.aclose()
    return run


async def books(redis_url: str, database: str, campaign_id: int, bargains: list[int], created: int) -> list[str]:
    """Wait for the worker to drain, then compare the database with Redis. Lines starting
    with FAIL are failures."""
    redis = Redis.from_url(redis_url)
    stream = BargainKeys(campaign_id, 0).stream
    try:
        deadline = time.monotonic() + 300
        while await redis.xlen(stream) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        prices = {b: int(await redis.hget(BargainKeys(campaign_id, b).state, "price") or 0) for b in bargains}
    finally:
        await redis.aclose()
    await asyncio.sleep(1)  # the last batch's commit
    db = sqlite3.connect(database.removeprefix("sqlite://"))
    rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT bargain_id || ':' || seq) FROM bargain_cuts").fetchone()
    sums = dict(db.execute("SELECT bargain_id, SUM(cut) FROM bargain_cuts GROUP BY bargain_id").fetchall())
    db.close()
    lines = [f"{'ok  ' if rows[0] == created else 'FAIL'}  {rows[0]:,} cut rows for {created:,} answers 201"]
    lines.append(f"{'ok  ' if rows[0] == rows[1] else 'FAIL'}  no (bargain, seq) twice ({rows[1]:,} distinct)")
    bad = [b for b in bargains if START_PRICE - prices[b] != int(sums.get(b) or 0)]
    lines.append(f"{'FAIL' if bad else 'ok  '}  sum of cuts == start - price in Redis for every bargain ({bad})")
    return lines


async def bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    redis_url = start_redis(stack)
    say("starting the server")
    ours = start_ours(stack, redis_url, None, False, "asyncio")
    create_operator(ours)
    campaign_id = await launch(ours.url)
    say(f"logging in {args.helpers} customers")
    tokens = await login_customers(ours.url, args.helpers, prefix="o_bargain")
    bargains = await start_bargains(ours.url, campaign_id, tokens[: args.bargains])
    load_before = os.getloadavg()[0]
    say("measuring")
    bare = await run_bare(redis_url, args.helpers, args.bargains, args)
    mine = await run_ours(ours.url, ours.pid, tokens, bargains, args.bargains, args)
    load_after = os.getloadavg()[0]
    checks = await books(redis_url, ours.database_url, campaign_id, bargains, mine.statuses[201])
    print(
        f"bargain helps: {args.helpers} helpers x {args.bargains} bargains, {args.connections} concurrent requests "
        f"from one Python process, up to {args.seconds:.0f} s per target; our server on SQLite, workers in-process, "
        f"asyncio loop; load average (1 min) {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} cores"
    )
    print(bare.line())
    print(mine.line())
    print(f"ours / bare Lua: {mine.rate / bare.rate:.2f}x")
    print("books (after the worker drained):")
    print("\n".join(f"  {line}" for line in checks))
    return 1 if any(line.startswith("FAIL") for line in checks) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--helpers", type=int, default=200)
    parser.add_argument("--bargains", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        return asyncio.run(bench(args, stack))


if __name__ == "__main__":
    sys.exit(main())
