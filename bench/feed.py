"""The discovery feed under load (issue 6): `GET /api/v1/feed` at 64 connections for many
different customers, against `GET /healthz` on the same server in the same run.

    .venv/bin/python -m bench.feed [--customers 100000] [--campaigns 1000] [--sample 10000]
                                   [--seconds 10] [--connections 64]

Set-up (bench.harness.start_server: embedded defaults, SQLite in a temporary DATA_DIR,
and a redis-server the bench starts like the embedded one, to watch it; REVIEW_LEVELS=0
and a 1 s scheduler): a superadmin made with ``python -m server create-admin`` creates
50 stores in 10 cities, 5 themes and a POS integration through the admin API. The
customers, their facts, store visits and purchase events are bulk-inserted into the
server's SQLite file (WAL: the idle server does not mind): tiers, interest tags, cities,
preferred stores and bought categories vary, so rankings differ between customers. The
campaigns go through the real admin routes (create, submit, publish; the scheduler
activates them): 80% running (a quarter of those targeted by an audience rule, 40% at a
list of stores, some ending within hours), 10% teasers, 5% hidden, 5% offered only at
the POS; one in ten has a coupon (``--coupon-share``: the claims worker polls the stream
of each, in the same process). Participants are bulk-inserted with a heavy-tailed count
per campaign. A sample of customers spread over the whole table logs in through the
WeChat emulator.

The sampled customers make three groups, so that no run starts with rankings an earlier
one left in the server's cache (FEED_RANKING_SECONDS). The run: one feed request per
customer of the first group (a tenth; the very first request builds three targeted
campaigns' audience sets and queues the others: the bench waits, watching Redis, until
the server has built them all), a warm-up, 5 s idle once its queued
requests finished (the server's CPU with no request: its background workers), then wrk
(bench/wrk_report.lua) on ``/healthz`` (2 threads), and three times on the feed (1 thread, so
that each line is sent once per cycle, in order):

- **first look**: ``GET /api/v1/feed``, each request a customer of the second group, whose
  ranking is computed for it: the cost of the feed without the ranking cache;
- **return look**: the second group again, after one request each (16 at a time) wrote
  every one's feed profile and a wait past the ranking cache's life: a customer coming
  back, ranked from their profile (services/feed/profile.py) without the database;
- **app opens**: per customer of the third group, in a row, what opening the mini program
  asks: ``/api/v1/feed/sections``, ``/api/v1/feed`` and its second page (the three arrive
  together over the 64 connections and share one ranking).

Each customer asks from where they are: 60% no location, 30% ``lat``/``lng`` near their
city, 10% ``store_id``. Printed: requests/s, p50, p99, the ratio to ``/healthz``, and the
server's CPU time per request (/proc, which the machine's other load does not distort).

Last, the stall a catalog change causes: five times each, alternated, the catalog version
is bumped naming one campaign (as the scheduler's transitions and admins' edits do: the
index reloads it) or naming none (the index is built in full), and one feed request
right after is timed; printed: the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
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
from redis.asyncio import Redis

from bench.grab import call, profile_summary, profiled, say, start_redis
from bench.harness import ROOT, Figures, cpu_seconds, login_openids, start_server, start_variant, wrk
from bench.open_loop import Endpoint, profile, table
from server.settings import DEFAULT_SECRET
from services.core import Principal, issue_access_token
from services.feed import FeedPolicy, catalog_changes, encode_offset
from tests.campaigns.fixtures import coupon_body

ADMIN_USER, ADMIN_PASSWORD = "bench-root", "bench-superadmin-secret-0123"
SERVER_ENV = {
    "REVIEW_LEVELS": "0",
    "SCHEDULER_INTERVAL": "1",
    "ACCESS_TOKEN_TTL": "7200",
}
CITIES = [  # (city, latitude, longitude, share of customers)
    ("Shanghai", 31.23, 121.47, 0.18), ("Beijing", 39.90, 116.40, 0.16), ("Guangzhou", 23.13, 113.26, 0.11),
    ("Shenzhen", 22.54, 114.06, 0.11), ("Hangzhou", 30.27, 120.16, 0.09), ("Chengdu", 30.66, 104.07, 0.09),
    ("Wuhan", 30.59, 114.31, 0.08), ("Nanjing", 32.06, 118.80, 0.07), ("Xi'an", 34.34, 108.94, 0.06),
    ("Suzhou", 31.30, 120.58, 0.05),
]  # fmt: skip
TAGS = ["coffee", "tea", "bakery", "books", "fashion", "beauty", "sports", "kids", "pets", "travel", "wine", "tech"]
CATEGORIES = ["drinks", "food", "snacks", "apparel", "cosmetics", "toys", "electronics", "home"]
TIERS = [("standard", 0.60), ("silver", 0.25), ("gold", 0.11), ("platinum", 0.04)]
STORES_PER_CITY = 5
THEMES = 5


def _ts(dt: datetime) -> str:
    """A datetime as tortoise writes it to SQLite."""
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    r, edge = rng.random(), 0.0
    for value, share in weighted:
        edge += share
        if r < edge:
            return value
    return weighted[-1][0]


# --- set-up through the admin API --------------------------------------------------------


async def admin_setup(base: str) -> tuple[str, dict[str, list[int]], list[int], int]:
    """(admin token, store ids per city, theme ids, integration id)."""
    admin = f"{base}/api/v1/admin"
    async with aiohttp.ClientSession() as session:
        login = {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        token = (await call(session, "POST", f"{admin}/auth/login", None, login, 200))["access_token"]
        stores: dict[str, list[int]] = {}
        rng = random.Random(7)
        for c, (city, lat, lng, _) in enumerate(CITIES):
            for k in range(STORES_PER_CITY):
                body = {"code": f"B{c:02}{k}", "name": f"{city} {k}", "city": city,
                        "latitude": lat + rng.uniform(-0.08, 0.08),
                        "longitude": lng + rng.uniform(-0.08, 0.08)}  # fmt: skip
                store = await call(session, "POST", f"{admin}/stores", token, body, 201)
                stores.setdefault(city, []).append(store["id"])
        themes = [
            (await call(session, "POST", f"{admin}/themes", token, {"name": f"Theme {i}"}, 201))["id"]
            for i in range(THEMES)
        ]
        integration = await call(session, "POST", f"{admin}/integrations", token, {"name": "bench-pos"}, 201)
    return token, stores, themes, int(integration["id"])


def campaign_specs(
    count: int, stores: dict[str, list[int]], themes: list[int], coupon_share: float, seed: int = 11
) -> list[dict[str, Any]]:
    """The campaigns' bodies: a deterministic mix (see the module docstring)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    all_stores = [s for ids in stores.values() for s in ids]
    rules = [
        lambda: {"tier": ["gold", "platinum"]},
        lambda: {"tier": rng.choice(["silver", "gold"])},
        lambda: {"city": rng.choice(CITIES)[0]},
        lambda: {"interest_tags_any": rng.sample(TAGS, 2)},
        lambda: {"spend_at_least": {"days": 90, "amount": rng.choice([50_000, 200_000])}},
        lambda: {"all": [{"city": rng.choice(CITIES)[0]}, {"tier": ["silver", "gold", "platinum"]}]},
        lambda: {"visited_store": rng.choice(all_stores)},
        lambda: {"lifecycle_stage": ["active", "silent"]},
    ]
    specs = []
    for i in range(count):
        kind = _pick(rng, [("running", 0.80), ("teaser", 0.10), ("hidden", 0.05), ("pos", 0.05)])
        if kind == "teaser":
            starts = now + timedelta(hours=rng.uniform(6, 120))
            visible_from: datetime | None = now - timedelta(days=1)
        else:
            starts = now - timedelta(days=rng.uniform(0.5, 10))
            visible_from = None
        # A few end within hours ("ends in 5 hours"), most within a month.
        ends = (
            (now + timedelta(hours=rng.uniform(2, 72)))
            if rng.random() < 0.1
            else starts + timedelta(days=rng.uniform(12, 40))
        )
        ends = max(ends, starts + timedelta(hours=1))
        targeted = kind == "running" and rng.random() < 0.25
        at_stores = None
        if rng.random() < 0.4:
            city = rng.choice(CITIES)[0]
            at_stores = sorted(set(rng.sample(stores[city], rng.randint(1, STORES_PER_CITY))
                                   + rng.sample(all_stores, rng.randint(0, 5))))  # fmt: skip
        spec: dict[str, Any] = {
            "type": "offer",
            "content": {
                "zh-CN": {"title": f"活动 {i}", "summary": "优惠"},
                "en": {"title": f"Campaign {i}", "summary": "Deals"},
            },
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
            "categories": rng.sample(CATEGORIES, rng.randint(1, 2)),
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "channels": ["pos"] if kind == "pos" else ["miniprogram"],
            "store_ids": at_stores,
            "visibility": "hidden" if kind == "hidden" else "targeted" if targeted else "public",
            "audience_rule": rng.choice(rules)() if targeted else None,
            "theme_id": rng.choice(themes) if rng.random() < 0.3 else None,
        }
        if visible_from is not None:
            spec["visible_from"] = visible_from.isoformat()
        if rng.random() < coupon_share:  # a welcome coupon: the claims worker polls its stream
            spec["coupons"] = [coupon_body(total_stock=1000)]
            spec["budget_limit"] = 1000 * 1000
        specs.append(spec)
    return specs


async def create_campaigns(base: str, token: str, specs: list[dict[str, Any]]) -> list[int]:
    """Create, submit and publish each (REVIEW_LEVELS=0), eight at a time."""
    admin = f"{base}/api/v1/admin"
    gate = asyncio.Semaphore(8)
    async with aiohttp.ClientSession() as session:

        async def one(spec: dict[str, Any]) -> int:
            async with gate:
                campaign = await call(session, "POST", f"{admin}/campaigns", token, spec, 201)
                path = f"{admin}/campaigns/{campaign['id']}"
                await call(session, "POST", f"{path}/submit", token, {}, 200)
                await call(session, "POST", f"{path}/publish", token, {}, 200)
                return int(campaign["id"])

        return list(await asyncio.gather(*(one(s) for s in specs)))


# --- bulk seeding ---------------------------------------------------------------------------


def seed_customers(
    db: sqlite3.Connection, count: int, stores: dict[str, list[int]], integration_id: int, seed: int = 5
) -> dict[str, int]:
    """Customers with facts, store visits and purchase events; returns row counts."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    today = now.date()
    city_weights = [(c, share) for c, _, _, share in CITIES]
    customers, facts, visits, events = [], [], [], []
    for n in range(count):
        cid = n + 1
        city = _pick(rng, city_weights)
        tier = _pick(rng, TIERS)
        tags = [t for t in TAGS if rng.random() < 0.15]
        preferred = rng.choice(stores[city]) if rng.random() < 0.7 else None
        age_days = rng.randint(0, 1095)
        created = now - timedelta(days=age_days, seconds=rng.randint(0, 86_399))
        customers.append((cid, f"o_feed_{n}", f"user {n}", json.dumps(tags), city, preferred, tier, _ts(created)))
        bought_days = min(rng.randint(0, 400), age_days) if rng.random() < 0.65 else None
        visited_days = min(rng.randint(0, 200), age_days) if rng.random() < 0.8 else None
        basket = rng.randint(5_000, 60_000)
        windows = []
        for w in (7, 30, 90, 180, 365):
            bought = bought_days is not None and bought_days < w
            windows.append(basket * (1 + int(rng.random() * w / 15)) if bought else 0)
        for w in (7, 30, 90, 180, 365):
            visited = visited_days is not None and visited_days < w
            windows.append(1 + int(rng.random() * w / 10) if visited else 0)
        purchases = 0 if bought_days is None else rng.randint(1, 40)
        if age_days <= 7:
            stage = "new"
        elif bought_days is None:
            stage = "unactivated"
        else:
            stage = "active" if bought_days <= 30 else "silent" if bought_days <= 90 else "churned"
        last_purchase = None if bought_days is None else (today - timedelta(days=bought_days)).isoformat()
        last_visit = None if visited_days is None else (today - timedelta(days=visited_days)).isoformat()
        facts.append((cid, *windows, purchases, purchases * basket,
                      None if bought_days is None else (today - timedelta(days=age_days)).isoformat(),
                      last_purchase, last_visit, last_purchase or last_visit, stage, _ts(now)))  # fmt: skip
        if visited_days is not None:
            home = stores[city]
            for store in {rng.choice(home) for _ in range(rng.randint(1, 2))}:
                visits.append((cid, store, rng.randint(1, 10), (today - timedelta(days=visited_days)).isoformat()))
        # Purchase events of the last 90 days give "categories bought" (the behaviour score).
        if bought_days is not None and bought_days < 90:
            for k in range(rng.randint(1, 3)):
                at = now - timedelta(days=rng.uniform(bought_days, 90), seconds=k)
                cats = json.dumps(rng.sample(CATEGORIES, rng.randint(1, 2)))
                events.append((f"b{cid}-{k}", "purchase", "applied", _ts(at), basket, None, preferred, cats,
                               None, "0" * 64, "{}", _ts(at), cid, integration_id))  # fmt: skip
    db.executemany(
        "INSERT INTO customers (id, openid, nickname, interest_tags, city, preferred_store_id, membership_tier,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        customers,
    )
    columns = (
        ", ".join(f"spend_{w}d" for w in (7, 30, 90, 180, 365))
        + ", "
        + ", ".join(f"visits_{w}d" for w in (7, 30, 90, 180, 365))
    )
    db.executemany(
        f"INSERT INTO customer_facts (customer_id, {columns}, purchases_total, spend_total, first_purchase_at,"
        " last_purchase_at, last_visit_at, last_active_at, lifecycle_stage, updated_at)"
        f" VALUES ({', '.join('?' * 19)})",
        facts,
    )
    db.executemany(
        "INSERT INTO customer_store_visits (customer_id, store_id, visits, last_visit_at) VALUES (?, ?, ?, ?)", visits
    )
    db.executemany(
        "INSERT INTO integration_events (external_id, type, status, occurred_at, amount, order_ref, store_id,"
        " categories, refund_of, body_hash, result, created_at, customer_id, integration_id)"
        f" VALUES ({', '.join('?' * 14)})",
        events,
    )
    db.commit()
    return {"customers": len(customers), "customer_facts": len(facts), "customer_store_visits": len(visits),
            "purchase events": len(events)}  # fmt: skip


def seed_participants(db: sqlite3.Connection, campaign_ids: list[int], customers: int, seed: int = 9) -> int:
    """A heavy-tailed number of participants per campaign (most a few dozen, some
    thousands), so popularity separates them."""
    rng = random.Random(seed)
    now = _ts(datetime.now(UTC))
    rows = []
    for campaign_id in campaign_ids:
        n = min(customers, int(math.exp(rng.uniform(0, math.log(2_000)))) - 1)
        for customer_id in rng.sample(range(1, customers + 1), n):
            rows.append((campaign_id, customer_id, "joined", 0, now))
    # In chunks: one long write transaction would lock the server's scheduler out.
    for start in range(0, len(rows), 20_000):
        db.executemany(
            "INSERT INTO participations (campaign_id, customer_id, status, progress, joined_at) VALUES (?, ?, ?, ?, ?)",
            rows[start : start + 20_000],
        )
        db.commit()
    return len(rows)


# --- the run --------------------------------------------------------------------------------


def request_queries(homes: list[tuple[float, float, int | None]], seed: int = 3) -> list[str]:
    """Where each sampled customer asks from: 60% no location, 30% lat/lng near their
    city, 10% at a store of their city."""
    rng = random.Random(seed)
    queries = []
    for lat, lng, store in homes:
        r = rng.random()
        if r < 0.6 or (r >= 0.9 and store is None):
            queries.append("")
        elif r < 0.9:
            queries.append(f"lat={lat + rng.uniform(-0.05, 0.05):.4f}&lng={lng + rng.uniform(-0.05, 0.05):.4f}")
        else:
            queries.append(f"store_id={store}")
    return queries


def _line(path: str, query: str, token: str) -> str:
    return f"GET\t{path}{'?' + query if query else ''}\tBearer {token}\t-"


def request_lines(tokens: list[str], queries: list[str]) -> list[str]:
    """One feed request per customer."""
    return [_line("/api/v1/feed", q, t) for t, q in zip(tokens, queries, strict=True)]


def session_lines(tokens: list[str], queries: list[str]) -> list[str]:
    """What opening the mini program asks, per customer and in a row: the home page's
    sections, the feed's first page, then its second (scrolling)."""
    second = "cursor=" + encode_offset(20)
    lines = []
    for token, query in zip(tokens, queries, strict=True):
        lines += [
            _line("/api/v1/feed/sections", query, token),
            _line("/api/v1/feed", query, token),
            _line("/api/v1/feed", f"{query}&{second}" if query else second, token),
        ]
    return lines


async def first_pass(base: str, lines: list[str]) -> tuple[float, list[float], list[dict[str, Any]]]:
    """(seconds of the very first request, latencies of one request per line after it,
    a few answers). The first builds the audience sets of every targeted campaign."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(line: str) -> tuple[float, dict[str, Any]]:
            _, path, auth, _ = line.split("\t")
            start = time.perf_counter()
            async with session.get(f"{base}{path}", headers={"Authorization": auth}) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"GET {path} answered {resp.status}: {body}")
            return time.perf_counter() - start, body

        first, _ = await one(lines[0])
        gate = asyncio.Semaphore(16)

        async def gated(line: str) -> tuple[float, dict[str, Any]]:
            async with gate:
                return await one(line)

        answers = await asyncio.gather(*(gated(line) for line in lines))
    return first, [a[0] for a in answers], [a[1] for a in answers]


def warm_profiles(base: str, lines: list[str]) -> None:
    """One request per line (16 at a time), so that each customer's feed profile is in
    Redis (services/feed/profile.py), then a wait past the server's ranking cache
    (FeedPolicy.ranking_seconds): their next request is a return look."""
    asyncio.run(first_pass(base, lines))
    time.sleep(FeedPolicy().ranking_seconds + 1.0)


async def after_changes(base: str, redis_url: str, line: str, campaign_id: int, times: int = 5) -> tuple[float, float]:
    """Median seconds of a feed request right after a catalog version bump that names one
    campaign (as the scheduler's transitions and admins' edits do: the index reloads it),
    and right after one that names none (the index is built in full), alternated."""
    _, path, auth, _ = line.split("\t")
    named: list[float] = []
    full: list[float] = []
    redis = Redis.from_url(redis_url)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(times):
                for ids, into in (([campaign_id], named), (None, full)):
                    await catalog_changes.bump(redis, ids)
                    start = time.perf_counter()
                    async with session.get(f"{base}{path}", headers={"Authorization": auth}) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"GET {path} answered {resp.status}")
                    into.append(time.perf_counter() - start)
    finally:
        await redis.aclose()
    return statistics.median(named), statistics.median(full)


async def audiences_built(redis_url: str, quiet: float = 3.0) -> int:
    """Wait until the server has built every targeted campaign's audience set: the first
    request builds a few and queues the others, rebuilt one at a time in the background
    (no rebuild running and the count unchanged for ``quiet`` seconds)."""
    redis = Redis.from_url(redis_url)
    try:
        last, since = -1, time.monotonic()
        while True:
            fresh = [k async for k in redis.scan_iter(match="{feed-audience}:*:fresh", count=1000)]
            building = [k async for k in redis.scan_iter(match="{feed-audience}:*:building", count=1000)]
            if len(fresh) != last or building:
                last, since = len(fresh), time.monotonic()
            elif time.monotonic() - since >= quiet:
                return last
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()


#: The feed path's parts, for the profile's breakdown.
PARTS = (
    ("aiohttp request handling, all of it", "RequestHandler._handle_request (aiohttp/web_protocol.py)"),
    ("  feed handler", "get_feed (handlers/customer/feed.py)"),
    ("  sections handler", "get_sections (handlers/customer/feed.py)"),
    ("    the index (version check, rebuild)", "Feed.index (services/feed/runtime.py)"),
    ("    the customer's queries (viewer)", "viewer (services/feed/viewer.py)"),
    ("    audience membership (Redis)", "audience_of (services/feed/audience_sets.py)"),
    ("    the ranking cache (versions, single flight)", "Feed.ranking_for (services/feed/runtime.py)"),
    ("    scoring", "score_rows (services/feed/scoring.py)"),
    ("    items", "_item (handlers/customer/feed.py)"),
    ("    reasons", "rank_one (services/feed/scoring.py)"),
    ("  bearer token check", "authenticate (server/routing.py)"),
    ("  JSON response encoding", "json_response (server/routing.py)"),
    ("aiosqlite thread running SQL", "_connection_worker_thread (aiosqlite/core.py)"),
)


def measured(
    pid: int, label: str, base: str, lines: list[str], connections: int, seconds: float, profile: Path | None = None,
    threads: int = 2,
) -> tuple[Figures, float]:  # fmt: skip
    """wrk figures and the server's CPU milliseconds per request."""
    before = cpu_seconds(pid)
    with profiled(pid, seconds, profile):
        figures = wrk(label, base, lines, connections, seconds, threads)
    return figures, (cpu_seconds(pid) - before) * 1000 / max(1, figures.requests)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--campaigns", type=int, default=1_000)
    parser.add_argument(
        "--sample", type=int, default=10_000,
        help="customers logged in: a tenth warms up, the rest split between the two feed runs",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--coupon-share", type=float, default=0.1, help="campaigns with a coupon (0-1)")
    parser.add_argument("--aim-p99-ms", type=float, default=30.0)
    parser.add_argument("--profile", type=Path, help="py-spy the server during each feed run (PATH.first, PATH.opens)")
    parser.add_argument(
        "--plain", help="instead of the runs above: servers as is and with these library overrides replaced by "
        "the plain library (BENCH_PLAIN names, bench/plain.py; ';' between variants), in turn, --pairs times",
    )  # fmt: skip
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument(
        "--open-loop", action="store_true",
        help="instead of the wrk runs: first looks open-loop (bench/open_loop.py), capacity then p50/p99/p99.9 at "
        "--fractions of it, against /healthz's CPU at the same rates; customers' tokens minted, not logged in",
    )  # fmt: skip
    parser.add_argument("--fractions", default="0.5,0.8", help="with --open-loop: of the capacity")
    parser.add_argument("--step-seconds", type=float, default=4.0, help="with --open-loop: capacity-search runs")
    args = parser.parse_args()
    sample = min(args.sample, args.customers)
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        redis_url = start_redis(stack)
        server = start_server({**SERVER_ENV, "REDIS_URL": redis_url})
        assert server.process is not None and server.data_dir is not None
        stack.callback(server.stop)
        env = {**os.environ, **SERVER_ENV, "DATA_DIR": str(server.data_dir)}
        subprocess.run(
            [sys.executable, "-m", "server", "create-admin", "--username", ADMIN_USER,
             "--role", "superadmin"],
            cwd=ROOT, env={**env, "ADMIN_PASSWORD": ADMIN_PASSWORD}, check=True,
            stdout=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        token, stores, themes, integration_id = asyncio.run(admin_setup(server.url))
        db = sqlite3.connect(f"{server.data_dir}/app.sqlite3", timeout=60)
        stack.callback(db.close)
        t = time.monotonic()
        counts = seed_customers(db, args.customers, stores, integration_id)
        say(f"seeded in {time.monotonic() - t:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        t = time.monotonic()
        specs = campaign_specs(args.campaigns, stores, themes, args.coupon_share)
        campaign_ids = asyncio.run(create_campaigns(server.url, token, specs))
        say(f"{len(campaign_ids):,} campaigns created, submitted and published in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        participants = seed_participants(db, campaign_ids, args.customers)
        say(f"{participants:,} participations seeded in {time.monotonic() - t:.1f} s")
        while True:  # the scheduler activates those whose start has passed
            waiting = db.execute(
                "SELECT COUNT(*) FROM campaigns WHERE status = 'scheduled' AND starts_at <= ?",
                (_ts(datetime.now(UTC)),),
            ).fetchone()[0]
            if not waiting:
                break
            time.sleep(0.5)
        by_status = dict(db.execute("SELECT status || '/' || visibility, COUNT(*) FROM campaigns GROUP BY 1"))
        say(f"campaigns by status/visibility: {by_status}")

        rng = random.Random(1)
        picked = sorted(rng.sample(range(args.customers), sample))
        t = time.monotonic()
        if args.plain or args.open_loop:  # minted: they need more customers than logging in makes quickly
            tokens = [issue_access_token(DEFAULT_SECRET, Principal("customer", n + 1), 7200) for n in picked]
        else:
            tokens = asyncio.run(login_openids(server.url, [f"o_feed_{n}" for n in picked]))
            say(f"{len(tokens):,} sampled customers logged in through the emulator in {time.monotonic() - t:.1f} s")
        coords = {city: (lat, lng) for city, lat, lng, _ in CITIES}
        homes = []
        for n in picked:
            city, store = db.execute(
                "SELECT city, preferred_store_id FROM customers WHERE openid = ?", (f"o_feed_{n}",)
            ).fetchone()
            homes.append((*coords[city], store))
        queries = request_queries(homes)
        # Three groups of customers: the warm-up's, then one per run, so that neither run
        # starts with rankings another one left in the server's cache.
        # (The A/B needs many customers for its runs, a warm-up of a thousand at most.)
        warm = max(1, min(sample // 10, 1000) if args.plain else sample // 10)
        cold_n = (sample - warm) * 3 // 5
        lines = request_lines(tokens[:warm], queries[:warm])
        cold = request_lines(tokens[warm : warm + cold_n], queries[warm : warm + cold_n])
        sessions = session_lines(tokens[warm + cold_n :], queries[warm + cold_n :])

        first, latencies, answers = asyncio.run(first_pass(server.url, lines))
        tops = {tuple(i["id"] for i in a["items"][:5]) for a in answers}
        sizes = [len(a["items"]) for a in answers]
        say(f"first feed request (builds the audience sets): {first:.2f} s; then one request per warm-up customer, "
            f"16 at a time: median {statistics.median(latencies) * 1000:.1f} ms; distinct top-5 orders: "
            f"{len(tops):,} of {len(answers):,}; items on the first page {min(sizes)}-{max(sizes)}")  # fmt: skip
        t = time.monotonic()
        built = asyncio.run(audiences_built(redis_url))
        say(f"{built} audience sets built (the rest of them in the background): {time.monotonic() - t:.1f} s more")
        pid = server.process.pid
        if args.open_loop:
            return open_loop_first_looks(args, server.url, server.process.pid, cold, redis_url)
        if args.plain:
            # Two more servers without background workers (the first one keeps them), so
            # that neither measured one pays for them: as is, and plain.
            where = {**SERVER_ENV, "DATA_DIR": str(server.data_dir), "REDIS_URL": redis_url}
            servers = {
                f"plain ({names})" if names else "as is": start_variant(stack, where, names)
                for names in ["", *args.plain.split(";")]
            }
            for base, _ in servers.values():
                asyncio.run(first_pass(base, lines[:300]))  # its index and the audience sets
            return ab(args, servers, lines, cold, sessions)
        wrk("warm-up", server.url, lines, args.connections, args.warmup)
        # What the server burns with no request (its background workers), for reading
        # the CPU per request below; first the warm-up's requests still queued finish.
        time.sleep(3.0)
        idle_before = cpu_seconds(pid)
        time.sleep(5.0)
        idle = (cpu_seconds(pid) - idle_before) / 5.0
        healthz, healthz_cpu = measured(
            pid, "GET /healthz (baseline)", server.url, ["GET\t/healthz\t-\t-"], args.connections, args.seconds
        )
        # One wrk thread for the feed: the lines are sent in order, each once per cycle
        # (two threads each cycle all of them, from random places).
        first_looks, cold_cpu = measured(
            pid,
            "feed, first look",
            server.url,
            cold,
            args.connections,
            args.seconds,
            args.profile and args.profile.with_suffix(".first"),
            threads=1,
        )
        warm_profiles(server.url, cold)
        returns, return_cpu = measured(
            pid, "feed, return look", server.url, cold, args.connections, args.seconds,
            args.profile and args.profile.with_suffix(".return"), threads=1,
        )  # fmt: skip
        opens, opens_cpu = measured(
            pid,
            "feed, app opens (3 requests)",
            server.url,
            sessions,
            args.connections,
            args.seconds,
            args.profile and args.profile.with_suffix(".opens"),
            threads=1,
        )
        named, full = asyncio.run(after_changes(server.url, redis_url, lines[0], campaign_ids[0]))
        load = os.getloadavg()[0]
        total = time.monotonic() - started
    print(f"feed: {args.customers:,} customers, {args.campaigns:,} campaigns ({by_status}; "
          f"{args.coupon_share:.0%} with a coupon), "
          f"{participants:,} participations; wrk, {args.connections} connections, "
          f"{args.seconds:.0f} s per run")  # fmt: skip
    print(f"server CPU while idle (background workers): {idle * 100:.0f}% of a core")
    print(healthz.line() + f"  server CPU {healthz_cpu:.3f} ms/req")
    print(first_looks.line() + f"  server CPU {cold_cpu:.3f} ms/req")
    print(returns.line() + f"  server CPU {return_cpu:.3f} ms/req")
    print(opens.line() + f"  server CPU {opens_cpu:.3f} ms/req")
    print(f"  first look: GET /api/v1/feed, each request a customer not seen for longer than the ranking cache keeps "
          f"one ({cold_n:,} customers; {first_looks.requests:,} requests"
          f"{'' if first_looks.requests <= cold_n else ': the list came round again'})")  # fmt: skip
    print(
        f"  return look: the same customers again, once each had had a first look and their cached "
        f"rankings had aged out: ranked from their feed profile ({returns.requests:,} requests)"
    )
    print(f"  app opens: per customer in a row, GET /api/v1/feed/sections, /api/v1/feed, its second page "
          f"({len(sessions) // 3:,} customers; {opens.requests:,} requests"
          f"{'' if opens.requests <= len(sessions) else ': the list came round again'})")  # fmt: skip
    print(f"a feed request right after a catalog change naming one campaign (the index reloads it): median "
          f"{named * 1000:.1f} ms; naming none (the index is built in full): median {full * 1000:.1f} ms")  # fmt: skip
    ok = True
    for figures in (first_looks, returns, opens):
        clean = figures.non2xx == 0 and figures.errors == 0
        verdict = "met" if figures.p99_ms < args.aim_p99_ms and clean else "MISSED"
        ok = ok and clean
        print(f"{figures.label}: ratio to /healthz {figures.rate / healthz.rate:.2f}; p99 {figures.p99_ms:.1f} ms, "
              f"aim < {args.aim_p99_ms:.0f} ms: {verdict}")  # fmt: skip
    print(f"load average (1 min) after the runs {load:.2f} on {os.cpu_count()} cores; whole bench {total:.0f} s")
    if args.profile:
        for run, suffix in (("first look", ".first"), ("return look", ".return"), ("app opens", ".opens")):
            print(f"{run}:")
            print("\n".join(profile_summary(args.profile.with_suffix(suffix), parts=PARTS)))
    return 0 if ok else 1


def open_loop_first_looks(args: argparse.Namespace, base: str, pid: int, cold: list[str], redis_url: str) -> int:
    """First looks at a fixed arrival rate (issue 19): the capacity, then the latency at
    ``--fractions`` of it, each run followed by ``/healthz`` at the same rate."""
    first = Endpoint("feed, first look", base, pid, cold)
    healthz = Endpoint("/healthz", base, pid, ["GET\t/healthz\t-\t-"])
    with tempfile.TemporaryDirectory(prefix="wxc-bench-open-") as directory:
        got = profile(
            first, healthz, start=100, max_rate=5000, step_seconds=args.step_seconds, seconds=args.seconds,
            fractions=[float(f) for f in args.fractions.split(",")], timeout=1.0, directory=Path(directory), say=say,
        )  # fmt: skip
    used = first.offset
    warm_profiles(base, cold)
    again = Endpoint("feed, return look", base, pid, cold)
    with tempfile.TemporaryDirectory(prefix="wxc-bench-open-") as directory:
        returned = profile(
            again, healthz, start=100, max_rate=5000, step_seconds=args.step_seconds, seconds=args.seconds,
            fractions=[float(f) for f in args.fractions.split(",")], timeout=1.0, directory=Path(directory), say=say,
        )  # fmt: skip
    print(f"feed, open-loop: {args.customers:,} customers, {args.campaigns:,} campaigns; a request fails unless "
          f"answered 200 within 1 s of its scheduled send; {len(cold):,} first-look customers, {used:,} requests"
          f"{'' if used <= len(cold) else ' (the list came round again: later requests reuse cached rankings)'}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print("\n".join(table("GET /api/v1/feed, first look", "/healthz", got)))
    print(
        f"return looks: the same {len(cold):,} customers again, after one request each wrote their feed profile "
        f"and their cached rankings aged out ({again.offset:,} requests"
        f"{'' if again.offset <= len(cold) else ': the list came round again, later ones reuse cached rankings'})"
    )
    print("\n".join(table("GET /api/v1/feed, return look", "/healthz", returned)))
    return 0


def ab(
    args: argparse.Namespace, servers: dict[str, tuple[str, int]], warm: list[str], cold: list[str],
    sessions: list[str],
) -> int:  # fmt: skip
    """First looks and app opens on each server in turn (as is, then each plain variant),
    ``args.pairs`` times, each run with customers no run saw before; CPU per request of
    each, and each variant's medians against the server as is."""
    for label, (base, _) in servers.items():
        wrk(f"warm-up {label}", base, warm, args.connections, args.warmup)
    runs = len(servers) * args.pairs
    size_cold, size_opens = len(cold) // runs, len(sessions) // 3 // runs * 3
    cpu: dict[tuple[str, str], list[float]] = {}
    n = 0
    for _ in range(args.pairs):
        for kind, lines, size in (("first look", cold, size_cold), ("app opens", sessions, size_opens)):
            for j, (label, (base, pid)) in enumerate(servers.items()):
                chunk = lines[(n + j) * size : (n + j + 1) * size]
                figures, per = measured(pid, f"{kind} {label}", base, chunk, args.connections, args.seconds, threads=1)
                cpu.setdefault((kind, label), []).append(per)
                came_round = " (the list came round: raise --sample)" if figures.requests > len(chunk) else ""
                say(f"{figures.line()}  server CPU {per:.3f} ms/req{came_round}")
        n += len(servers)
    print(f"feed A/B: {args.pairs} rounds of {args.seconds:.0f} s runs, {args.connections} connections, servers "
          f"in turn; load average (1 min) at the end {os.getloadavg()[0]:.2f}")  # fmt: skip
    for kind in ("first look", "app opens"):
        medians = {}
        for label in servers:
            values = cpu[(kind, label)]
            medians[label] = statistics.median(values)
            print(f"  {kind:<11} {label:<34} CPU ms/req {' '.join(f'{v:.3f}' for v in values)}  "
                  f"median {medians[label]:.3f}")  # fmt: skip
        mine = medians["as is"]
        for label, theirs in medians.items():
            if label != "as is":
                print(f"  {kind}: {label}: the override(s) save {1 - mine / theirs:+.1%} of the plain CPU per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
