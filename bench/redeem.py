"""Redemption at the till under load (issue 5): staff redeeming distinct vouchers at 64
connections, against `GET /healthz` on the same server in the same run.

    .venv/bin/python -m bench.redeem [--vouchers N] [--seconds T] [--connections 64] [--clerks 4]
                                     [--postgres | --database-url URL]

Set-up, all through the real server's API (bench.harness.start_server: SQLite and an
embedded-mode redis-server unless --postgres/--database-url): a superadmin made with
``python -m server create-admin`` creates a store and C clerks (who log in), and a
campaign whose coupon allows 100 per customer (published; REVIEW_LEVELS=0); N/100
customers log in through the WeChat emulator and grab N vouchers; the claims worker
persists them. Right before the run every voucher's QR payload is fetched
(``GET /api/v1/me/vouchers/{id}/qr``); payloads live QR_TTL_SECONDS, raised to 1800 for
the bench through the environment, since minting N takes longer than the default 60 s.

The run: wrk (2 threads) posts ``POST /api/v1/staff/redemptions {"payload"}``, every
request a different voucher (bench/wrk_redeem.lua gives each thread its own share of the
list and never repeats a line), the clerks' tokens in turn. Afterwards the database must
hold one redemption per used voucher, as many as wrk saw 201s (plus at most one per
connection still in flight when wrk stopped counting): exit status 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.grab import call, profile_summary, profiled, start_postgres, stop_process
from bench.harness import ROOT, Figures, cpu_seconds, login_customers, start_server, start_variant, wrk
from bench.open_loop import Endpoint, profile, table, tree_cpu_seconds
from tests.campaigns.fixtures import campaign_body, coupon_body

DRIVER = Path(__file__).resolve().parent / "wrk_redeem.lua"
ADMIN_USER, ADMIN_PASSWORD = "bench-root", "bench-superadmin-secret-0123"
PER_CUSTOMER = 100
SERVER_ENV = {
    "GRAB_USER_MAX": "1000000",
    "GRAB_IP_RATE": "1000000",
    "GRAB_IP_BURST": "10000000",
    "REVIEW_LEVELS": "0",
    "SCHEDULER_INTERVAL": "1",
    "ACCESS_TOKEN_TTL": "7200",
    # Minting N payloads takes longer than the default 60 s lifetime of each.
    "QR_TTL_SECONDS": "1800",
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def pooled(items: list[Any], work: Any, concurrency: int = 64) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(one(i) for i in items))


async def set_up(base: str, vouchers: int, clerks: int) -> tuple[list[str], list[str]]:
    """Clerk tokens, and one fresh QR payload per voucher."""
    admin = f"{base}/api/v1/admin"
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        root = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        store = {"code": "BENCH1", "name": "Bench store", "city": "Shanghai", "latitude": 31.2, "longitude": 121.5}
        store_id = (await call(session, "POST", f"{admin}/stores", root, store, 201))["id"]
        tokens = []
        for i in range(clerks):
            staff = {"username": f"clerk{i}", "password": f"pw-clerk{i}-0123456789", "display_name": f"Clerk {i}",
                     "role": "clerk", "store_id": store_id}  # fmt: skip
            await call(session, "POST", f"{admin}/staff", root, staff, 201)
            body = {"username": staff["username"], "password": staff["password"]}
            answer = await call(session, "POST", f"{base}/api/v1/staff/auth/login", None, body, 200)
            tokens.append(answer["access_token"])
        starts = datetime.now(UTC) + timedelta(seconds=3)
        spec = campaign_body(
            starts_at=starts.isoformat(), ends_at=(starts + timedelta(days=1)).isoformat(), budget_limit=None,
            coupons=[coupon_body(total_stock=vouchers, per_user_limit=PER_CUSTOMER, face_value=500)],
        )  # fmt: skip
        campaign = await call(session, "POST", f"{admin}/campaigns", root, spec, 201)
        path = f"{admin}/campaigns/{campaign['id']}"
        await call(session, "POST", f"{path}/submit", root, {}, 200)
        await call(session, "POST", f"{path}/publish", root, {}, 200)
        while (await call(session, "GET", path, root, None, 200))["status"] != "active":
            await asyncio.sleep(0.25)
        coupon_id = campaign["coupons"][0]["id"]

        customers = await login_customers(base, -(-vouchers // PER_CUSTOMER), prefix="o_redeem")
        say(f"{len(customers)} customers logged in; grabbing {vouchers} vouchers")
        jobs = [customers[i // PER_CUSTOMER] for i in range(vouchers)]

        async def grab(token: str) -> tuple[str, str]:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{base}/api/v1/coupons/{coupon_id}/grab", headers=headers) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"grab answered {resp.status}: {await resp.text()}")
                return token, (await resp.json())["voucher"]["id"]

        held = await pooled(jobs, grab)
        # Let the claims worker persist them (a QR request would persist a pending one too,
        # but the bench measures redemption, not that).
        deadline = time.monotonic() + 300
        while True:
            last = await call(session, "GET", f"{base}/api/v1/me/vouchers?limit=100", customers[-1], None, 200)
            if not any(v["pending"] for v in last["items"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)
        say("vouchers persisted; minting one QR payload per voucher")

        async def mint(item: tuple[str, str]) -> str:
            token, claim_id = item
            answer = await call(session, "GET", f"{base}/api/v1/me/vouchers/{claim_id}/qr", token, None, 200)
            return answer["payload"]

        payloads = await pooled(held, mint)
    return tokens, payloads


def wrk_redeem(base: str, tokens: list[str], payloads: list[str], connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        for i, payload in enumerate(payloads):
            body = json.dumps({"payload": payload})
            handle.write(f"POST\t/api/v1/staff/redemptions\tBearer {tokens[i % len(tokens)]}\t{body}\n")
        request_file = handle.name
    try:
        done = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(DRIVER),
             base, "--", request_file, "2"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(request_file)
    for row in done.stdout.splitlines():
        if row.startswith("WRK_JSON "):
            return json.loads(row.removeprefix("WRK_JSON "))
    raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")


def open_loop_redemptions(
    args: argparse.Namespace,
    base: str,
    process: subprocess.Popen[bytes],
    tokens: list[str],
    payloads: list[str],
    database_url: str,
    pg_pid: int | None = None,
) -> int:
    """Redemptions at a fixed arrival rate (issue 19), each request a different voucher,
    the clerks' tokens in turn; then the exactly-once check against the database.
    ``pg_pid``: the postmaster of the PostgreSQL the bench started, whose CPU (its
    backends' included) per redemption request is reported, averaged over every run."""
    lines = [
        f"POST\t/api/v1/staff/redemptions\tBearer {tokens[i % len(tokens)]}\t{json.dumps({'payload': p})}"
        for i, p in enumerate(payloads)
    ]
    redeem = Endpoint("redemption", base, process.pid, lines, ok=(201,))
    healthz = Endpoint("/healthz", base, process.pid, ["GET\t/healthz\t-\t-"])
    pg_before = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    with tempfile.TemporaryDirectory(prefix="wxc-bench-open-") as directory:
        got = profile(
            redeem, healthz, start=250, max_rate=10_000, step_seconds=args.step_seconds, seconds=args.seconds,
            fractions=[float(f) for f in args.fractions.split(",")], timeout=1.0, directory=Path(directory), say=say,
        )  # fmt: skip
    pg_cpu = tree_cpu_seconds(pg_pid) - pg_before if pg_pid else 0.0
    stop_process(process)  # requests the generator gave up on finish first
    rows, distinct, used = asyncio.run(count_in_database(database_url))
    runs = [*got.capacity.steps, *got.at.values(), *([got.warm_up] if got.warm_up else [])]
    redeemed = sum(m.result.statuses.get(201, 0) for m in runs)
    sent = sum(m.result.sent for m in runs)
    backend = "PostgreSQL" if not database_url.startswith("sqlite://") else "SQLite"
    wrapped = redeem.offset > len(lines)
    print(f"redemption, open-loop: {backend}; {len(lines):,} vouchers, {redeem.offset:,} requests"
          f"{' (MORE than vouchers: later runs re-sent used ones)' if wrapped else ''}; {args.clerks} clerks; a "
          f"request fails unless answered 201 within 1 s of its scheduled send; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print("\n".join(table("POST /api/v1/staff/redemptions", "/healthz", got)))
    if pg_pid:
        per = pg_cpu * 1000 / max(1, sent)
        print(f"PostgreSQL CPU (postmaster and backends) per redemption request, over every run: {per:.3f} ms: one "
              f"core of PostgreSQL serves ~{1000 / max(per, 1e-9):,.0f} redemptions/s")  # fmt: skip
    # The server finishes requests the generator gave up on: rows may exceed the 201s seen,
    # never the requests sent.
    exact = rows == distinct == used and redeemed <= rows <= sent
    print(f"exactly once: {'ok' if exact else 'FAILED'} (201s seen {redeemed:,}, requests sent {sent:,}, redemption "
          f"rows {rows:,}, distinct vouchers {distinct:,}, used vouchers {used:,})")  # fmt: skip
    return 0 if exact and not wrapped else 1


_COUNTS = (
    "SELECT COUNT(*) FROM redemptions",
    "SELECT COUNT(DISTINCT voucher_id) FROM redemptions",
    "SELECT COUNT(*) FROM vouchers WHERE status = 'used'",
)


async def count_in_database(database_url: str) -> tuple[int, int, int]:
    """(redemption rows, distinct vouchers redeemed, used vouchers), read straight from the
    database after the server stopped."""
    if database_url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite://"))) as db:
            a, b, c = (db.execute(sql).fetchone()[0] for sql in _COUNTS)
            return a, b, c
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1).split("?")[0])
    try:
        a, b, c = [await conn.fetchval(sql) for sql in _COUNTS]
        return a, b, c
    finally:
        await conn.close()


#: The redemption path and what shares the process with it, for the profile's breakdown.
_PARTS = (
    ("aiohttp request handling, all of it", "RequestHandler._handle_request (aiohttp/web_protocol.py)"),
    ("  redeem handler", "redeem_voucher (handlers/staff/redemptions.py)"),
    ("    QR payload check", "resolve (qr.py)"),
    ("    audit entry's JSON", "_audit_snapshots (redemption.py)"),
    ("    answer (view)", "view_of (redemption.py)"),
    ("  bearer token check", "authenticate (server/routing.py)"),
    ("  body parsing", "parse_body (server/routing.py)"),
    ("  JSON response encoding", "json_response (server/routing.py)"),
    ("batches to the database (their own task)", "_drain (redemption_write.py)"),
    ("rules per voucher (either thread)", "redeem.<locals>.decide (redemption.py)"),
    ("aiosqlite thread running SQL", "_connection_worker_thread (aiosqlite/core.py)"),
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vouchers", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--clerks", type=int, default=4)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster (tests.infra)")
    where.add_argument("--database-url", default=None)
    parser.add_argument("--pg-pool", type=int, default=None, help="PostgreSQL pool size (tortoise's maxsize)")
    parser.add_argument("--profile", type=Path, help="py-spy the server during the redemption run (raw output)")
    parser.add_argument(
        "--plain", help="instead of the runs above: two more servers, as is and with these library overrides "
        "replaced by the plain library (BENCH_PLAIN names, bench/plain.py), in turn, --pairs times",
    )  # fmt: skip
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument(
        "--open-loop", action="store_true",
        help="instead of the wrk runs: redemptions open-loop (bench/open_loop.py), capacity then p50/p99/p99.9 at "
        "--fractions of it, against /healthz's CPU at the same rates; give it enough --vouchers for every run",
    )  # fmt: skip
    parser.add_argument("--fractions", default="0.5,0.8", help="with --open-loop: of the capacity")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="with --open-loop: capacity-search runs")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.open_loop:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with contextlib.ExitStack() as stack:
        database_url = args.database_url
        pg_pid: int | None = None
        if args.postgres:
            cluster = start_postgres(stack, ["bench_redeem"])
            database_url = cluster.url("bench_redeem")
            pg_pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        if database_url and args.pg_pool and not database_url.startswith("sqlite://"):
            database_url += ("&" if "?" in database_url else "?") + f"maxsize={args.pg_pool}"
        env = dict(SERVER_ENV)
        if database_url:
            env["DATABASE_URL"] = database_url
        server = start_server(env)
        assert server.process is not None and server.data_dir is not None
        stack.callback(shutil.rmtree, server.data_dir, ignore_errors=True)
        stack.callback(stop_process, server.process)
        env.update(DATA_DIR=str(server.data_dir))
        database_url = database_url or f"sqlite://{server.data_dir}/app.sqlite3"
        env["DATABASE_URL"] = database_url
        subprocess.run(
            [sys.executable, "-m", "server", "create-admin", "--username", ADMIN_USER,
             "--role", "superadmin"],
            cwd=ROOT, env={**os.environ, **env, "ADMIN_PASSWORD": ADMIN_PASSWORD}, check=True,
            stdout=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        started = time.monotonic()
        tokens, payloads = asyncio.run(set_up(server.url, args.vouchers, args.clerks))
        say(f"set-up took {time.monotonic() - started:.0f} s; payloads {min(map(len, payloads))}-"
            f"{max(map(len, payloads))} characters")  # fmt: skip
        if args.open_loop:
            return open_loop_redemptions(args, server.url, server.process, tokens, payloads, database_url, pg_pid)
        if args.plain:
            redeemed = ab(stack, args, env, tokens, payloads)
            stop_process(server.process)
            rows, distinct, used = asyncio.run(count_in_database(database_url))
            exact = rows == distinct == used and redeemed <= rows <= redeemed + (2 * args.pairs + 2) * args.connections
            print(f"exactly once: {'ok' if exact else 'FAILED'} (201s seen {redeemed}, redemption rows {rows}, "
                  f"distinct vouchers {distinct}, used vouchers {used})")  # fmt: skip
            return 0 if exact else 1
        cpu_before = cpu_seconds(server.process.pid)
        baseline = wrk("GET /healthz (baseline)", server.url, ["GET\t/healthz\t-\t-"], args.connections, args.seconds)
        cpu_healthz = cpu_seconds(server.process.pid) - cpu_before
        cpu_before = cpu_seconds(server.process.pid)
        with profiled(server.process.pid, args.seconds, args.profile):
            data = wrk_redeem(server.url, tokens, payloads, args.connections, args.seconds)
        # Read before stopping: the requests still in flight add a little CPU and are not
        # counted, so this errs high by at most one request per connection.
        cpu_used = cpu_seconds(server.process.pid) - cpu_before
        redeemed = data["statuses"].get("201", 0)
        figures = Figures(
            "POST /api/v1/staff/redemptions", args.connections, data["requests"], data["duration_us"] / 1e6,
            data["errors"], data["non2xx"], data["p50_us"] / 1000, data["p99_us"] / 1000,
        )  # fmt: skip
        stop_process(server.process)  # requests wrk left in flight finish first
        rows, distinct, used = asyncio.run(count_in_database(database_url))
    backend = "PostgreSQL" if not database_url.startswith("sqlite://") else "SQLite"
    print(f"database: {backend}; vouchers: {args.vouchers}; clerks: {args.clerks}; wrk 2 threads")
    print(baseline.line())
    print(
        f"server CPU: {cpu_healthz / max(1, baseline.requests) * 1000:.3f} ms per GET /healthz (the HTTP stack's floor)"
    )
    print(figures.line())
    print(f"redemptions/s: {redeemed / figures.seconds:.0f}  (201s: {redeemed}, other answers: {data['statuses']}, "
          f"lines left unsent: {data['exhausted']})")  # fmt: skip
    print(f"ratio redeem/healthz: {figures.rate / baseline.rate:.2f}")
    # Server CPU (all threads: the event loop and aiosqlite's) per answered request: the
    # figure a shared machine distorts least. Meaningless under --profile (py-spy pauses
    # the process for every sample).
    per_request = cpu_used / max(1, data["requests"]) * 1000
    print(f"server CPU: {per_request:.2f} ms per redemption ({cpu_used:.2f} s for {data['requests']} requests, "
          f"{1000 / per_request if per_request else 0:.0f}/s if one core were all its own)")  # fmt: skip
    # wrk stops counting at the deadline with up to one request per connection in flight;
    # the server finishes those, so the database may hold a few more than wrk saw.
    exact = rows == distinct == used and redeemed <= rows <= redeemed + args.connections
    verdict = "ok" if exact else "FAILED"
    print(f"exactly once: {verdict} (201s seen {redeemed}, redemption rows {rows}, distinct vouchers {distinct}, "
          f"used vouchers {used})")  # fmt: skip
    if args.profile:
        print("\n".join(profile_summary(args.profile, parts=_PARTS)))
    return 0 if exact and data["exhausted"] == 0 else 1


def ab(
    stack: contextlib.ExitStack, args: argparse.Namespace, env: dict[str, str], tokens: list[str], payloads: list[str]
) -> int:  # fmt: skip
    """Redemptions on two more servers in turn (as is, plain), ``args.pairs`` times, each
    run with vouchers no run used; prints the CPU per request of each; returns the 201s."""
    servers = {"as is": start_variant(stack, env, ""), f"plain ({args.plain})": start_variant(stack, env, args.plain)}
    size = len(payloads) // (2 * args.pairs + 2)
    cpu: dict[str, list[float]] = {label: [] for label in servers}
    created, n = 0, 0
    for i in range(args.pairs + 1):  # the first round warms up, unmeasured
        for label, (base, pid) in servers.items():
            before = cpu_seconds(pid)
            data = wrk_redeem(base, tokens, payloads[n * size : (n + 1) * size], args.connections, args.seconds)
            per = (cpu_seconds(pid) - before) * 1000 / max(1, data["requests"])
            n += 1
            created += data["statuses"].get("201", 0)
            say(f"{'warm-up' if i == 0 else 'run'} {label}: {data['requests']} requests {data['statuses']}, "
                f"lines left unsent {data['exhausted']}, server CPU {per:.3f} ms/req")  # fmt: skip
            if i:
                cpu[label].append(per)
    print(f"redemption A/B: {args.pairs} pairs of {args.seconds:.0f} s runs, {args.connections} connections; load "
          f"average (1 min) at the end {os.getloadavg()[0]:.2f}")  # fmt: skip
    medians = {label: statistics.median(values) for label, values in cpu.items()}
    for label, values in cpu.items():
        print(f"  {label:<28} CPU ms/req {' '.join(f'{v:.3f}' for v in values)}  median {medians[label]:.3f}")
    mine, theirs = medians.values()
    print(f"  the override(s) save {1 - mine / theirs:+.1%} of the plain CPU per request")
    return created


if __name__ == "__main__":
    raise SystemExit(main())
