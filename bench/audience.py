"""Audience preview on 1,000,000 customers in PostgreSQL: three realistic rules (and one
deliberately broad one), each timed 5 times through ``services.audience.preview`` (count
+ sample of 20, validation included) and, with ``--http``, through the real server's
``POST /api/v1/admin/audiences/preview``. Prints median/max ms and the EXPLAIN of each
count query (top node and the indexes it uses).

    .venv/bin/python -m bench.audience [--customers 1000000] [--runs 5] [--http]

A throwaway PostgreSQL cluster on loopback (tests.infra.PostgresCluster), migrated like
production, seeded with server-side ``INSERT ... SELECT generate_series`` (no rows travel
through Python) with the secondary indexes built after the load, then VACUUM ANALYZEd
(the state autovacuum keeps a live database in). The facts are seeded directly (the daily history that
would produce them is not needed to time targeting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from tortoise import connections

from bench.harness import start_server
from models.campaigns import Campaign
from models.stores import Store
from server.db import apply_migrations, open_orm
from services.accounts import operators as accounts
from services.audience import Params
from services.audience import rules as audience
from tests.infra import PostgresCluster

CITIES = [  # (city, share of customers); the rest have no city
    ("Shanghai", 0.15), ("Beijing", 0.15), ("Guangzhou", 0.10), ("Shenzhen", 0.10), ("Hangzhou", 0.08),
    ("Chengdu", 0.08), ("Wuhan", 0.07), ("Nanjing", 0.07), ("Xi'an", 0.05), ("Suzhou", 0.05),
]  # fmt: skip
TAGS = ["coffee", "tea", "bakery", "books", "fashion", "beauty", "sports", "kids", "pets", "travel", "wine", "tech"]
STORES = 50


def _city_case(p: Params) -> str:
    """A CASE picking a city by cumulative share from one random draw ``r``."""
    parts, edge = [], 0.0
    for city, share in CITIES:
        edge += share
        parts.append(f"WHEN r < {edge:.2f} THEN {p(city)}")
    return "CASE " + " ".join(parts) + " END"


async def _step(conn: asyncpg.Connection, steps: list[tuple[str, float]], label: str, sql: str, *args: Any) -> None:
    start = time.perf_counter()
    await conn.execute(sql, *args)
    steps.append((label, time.perf_counter() - start))


async def seed(conn: asyncpg.Connection, customers: int, steps: list[tuple[str, float]]) -> tuple[int, int]:
    """Customers, facts, store visits and one campaign's participants. Returns (store X,
    campaign Y) for the rules."""
    stores = [
        await Store.create(
            code=f"S{i:03}", name=f"Store {i}", city=CITIES[i % len(CITIES)][0], latitude=31, longitude=121
        )
        for i in range(STORES)
    ]
    now = datetime.now(UTC)
    campaign = await Campaign.create(type="offer", starts_at=now, ends_at=now + timedelta(days=30), created_by=1)
    store_ids = [s.id for s in stores]

    p = Params("postgres")
    # Each tag with a 15% chance, drawn per row (no subquery: that would run per row too).
    # Zero-padded openids arrive in index order: appends, not page splits all over.
    tags = ", ".join(f"CASE WHEN random() < 0.15 THEN {p(tag)} END" for tag in TAGS)
    stores_param = p(store_ids)
    await _step(
        conn,
        steps,
        "customers",
        f"""
        INSERT INTO customers (openid, nickname, interest_tags, city, preferred_store_id, membership_tier, created_at)
        SELECT 'o_bench_' || lpad(g::text, 9, '0'), 'user ' || g,
               to_jsonb(array_remove(ARRAY[{tags}]::text[], NULL)),
               {_city_case(p)},
               CASE WHEN r2 < 0.7 THEN ({stores_param}::bigint[])[1 + floor(r3 * {STORES})::int] END,
               CASE WHEN r4 < 0.60 THEN 'standard' WHEN r4 < 0.85 THEN 'silver' WHEN r4 < 0.96 THEN 'gold'
                    ELSE 'platinum' END,
               now() - make_interval(secs => r5 * 1095 * 86400)
        FROM (SELECT g, random() r, random() r2, random() r3, random() r4, random() r5
              FROM generate_series(1, {p(customers)}) g) x
        """,
        *p.values,
    )
    p = Params("postgres")
    # Facts: 65% have bought, the last purchase 0-400 days ago (not before registering);
    # window amounts grow with the window. Stage as services.audience.facts defines it.
    windows = "".join(
        f", CASE WHEN lp < {w} THEN basket * (1 + floor(r1 * {w} / 15))::bigint ELSE 0 END"
        f", CASE WHEN lv < {w} THEN (1 + floor(r2 * {w} / 10))::int ELSE 0 END"
        for w in (7, 30, 90, 180, 365)
    )
    columns = ", ".join(f"spend_{w}d, visits_{w}d" for w in (7, 30, 90, 180, 365))
    await _step(
        conn,
        steps,
        "facts",
        f"""
        INSERT INTO customer_facts (customer_id, {columns}, purchases_total, spend_total, first_purchase_at,
                                    last_purchase_at, last_visit_at, last_active_at, lifecycle_stage, updated_at)
        SELECT id {windows},
               CASE WHEN lp IS NULL THEN 0 ELSE 1 + floor(r1 * 40)::int END,
               CASE WHEN lp IS NULL THEN 0 ELSE basket * (1 + floor(r1 * 40))::bigint END,
               CASE WHEN lp IS NOT NULL THEN current_date - age_days END,
               current_date - lp, current_date - lv, current_date - LEAST(lp, lv),
               CASE WHEN created_at >= current_date - 7 THEN 'new' WHEN lp IS NULL THEN 'unactivated'
                    WHEN lp <= 30 THEN 'active' WHEN lp <= 90 THEN 'silent' ELSE 'churned' END,
               now()
        FROM (SELECT id, created_at, age_days, r1, r2, (5000 + random() * 55000)::bigint basket,
                     CASE WHEN random() < 0.65 THEN LEAST(floor(random() * 400)::int, age_days) END lp,
                     CASE WHEN random() < 0.80 THEN LEAST(floor(random() * 200)::int, age_days) END lv
              FROM (SELECT id, created_at, (current_date - created_at::date) age_days, random() r1, random() r2
                    FROM customers) c) x
        """,
    )
    p = Params("postgres")
    await _step(
        conn,
        steps,
        "store visits",
        f"""
        INSERT INTO customer_store_visits (customer_id, store_id, visits, last_visit_at)
        SELECT id, ({p(store_ids)}::bigint[])[1 + (first + k * step) % {STORES}], 1 + floor(random() * 10)::int,
               current_date - floor(random() * 200)::int
        FROM (SELECT id, floor(random() * {STORES})::int first, 1 + floor(random() * {STORES - 1})::int step
              FROM customers) c
        CROSS JOIN generate_series(0, 1) k WHERE random() < 0.6
        """,
        *p.values,
    )
    await _step(
        conn,
        steps,
        "participations",
        """
        INSERT INTO participations (campaign_id, customer_id, status, progress, joined_at)
        SELECT $1, c.id, 'joined', 0, now() FROM customers c WHERE random() < 0.10
        """,
        campaign.id,
    )
    return store_ids[0], campaign.id


SEEDED_TABLES = ["customers", "customer_facts", "customer_store_visits", "participations"]


async def without_secondary_indexes(
    conn: asyncpg.Connection, steps: list[tuple[str, float]], load: Callable[[], Awaitable[Any]]
) -> Any:
    """Run ``load`` with the seeded tables' secondary indexes dropped, then build them
    again (as the migration defined them) and VACUUM ANALYZE: a bulk load then an index
    build is several times faster than maintaining a dozen indexes row by row, and the
    vacuum leaves the visibility map a live database would have. Unique constraints stay."""
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1::text[]) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        SEEDED_TABLES,
    )
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    # The generated rows are consistent by construction: skip the per-row foreign key
    # triggers while loading (a superuser setting, for this session only).
    await conn.execute("SET session_replication_role = replica")
    result = await load()
    await conn.execute("RESET session_replication_role")
    await conn.execute("SET maintenance_work_mem = '256MB'")
    for row in indexes:
        await _step(conn, steps, f"index {row['indexname']}", row["indexdef"])
    await _step(conn, steps, "VACUUM ANALYZE", "VACUUM ANALYZE")
    return result


def rules(store_x: int, campaign_y: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "gold/platinum in Shanghai, spent >= 2000 yuan in 90 d",
            {"all": [{"tier": ["gold", "platinum"]}, {"city": "Shanghai"},
                     {"spend_at_least": {"days": 90, "amount": 200_000}}]},
        ),
        (
            "coffee/tea lovers, >= 2 visits in 30 d, visited store X, not churned",
            {"all": [{"interest_tags_any": ["coffee", "tea"]}, {"visits_at_least": {"days": 30, "count": 2}},
                     {"visited_store": store_x}, {"not": {"lifecycle_stage": "churned"}}]},
        ),
        (
            "registered within 30 d, not joined campaign Y",
            {"all": [{"registered_within_days": 30}, {"not": {"joined_campaign": campaign_y}}]},
        ),
        ("(broad) everyone not churned", {"not": {"lifecycle_stage": "churned"}}),
    ]  # fmt: skip


async def timed(runs: int, call: Callable[[], Awaitable[int]]) -> tuple[list[float], int]:
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        count = await call()
        times.append((time.perf_counter() - start) * 1000)
    return times, count


def plan_summary(plan: dict[str, Any]) -> str:
    """The plan's spine from the top node down to its first join (or scan), and every
    index the plan reads."""
    spine, node = [], plan
    while True:
        name = " ".join(filter(None, (node.get("Partial Mode", "").replace("Simple", ""), node["Node Type"])))
        if node.get("Join Type", "Inner") != "Inner":
            name += f" ({node['Join Type'].lower()})"
        spine.append(name)
        children = node.get("Plans", [])
        if len(children) != 1:
            break
        node = children[0]
    indexes: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Index Name" in node and node["Index Name"] not in indexes:
            indexes.append(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return f"{' > '.join(spine)}; indexes: {', '.join(indexes) or 'none (sequential scans)'}"


async def explain(rule: dict[str, Any]) -> str:
    db = connections.get("default")
    prepared = await audience.validate_rule(rule)
    sql, params = audience.compile_query(prepared.node, "postgres", segments=prepared.segments)
    _, rows = await db.execute_query("EXPLAIN (FORMAT JSON) " + sql, params)
    raw = rows[0]["QUERY PLAN"]
    return plan_summary((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])


async def http_timings(url: str, cases: list[tuple[str, dict[str, Any]]], runs: int) -> list[tuple[list[float], int]]:
    server = start_server({"DATABASE_URL": url, "AUTO_MIGRATE": "false"})
    try:
        async with aiohttp.ClientSession() as session:
            login = {"username": "bench-operator", "password": "bench-password-0123456789"}
            async with session.post(f"{server.url}/api/v1/admin/auth/login", json=login) as resp:
                token = (await resp.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            out = []
            for _, rule in cases:

                async def one(rule: dict[str, Any] = rule) -> int:
                    async with session.post(
                        f"{server.url}/api/v1/admin/audiences/preview", json={"rule": rule}, headers=headers
                    ) as resp:
                        body = await resp.json()
                        assert resp.status == 200, body
                        return int(body["count"])

                out.append(await timed(runs, one))
            return out
    finally:
        server.stop()


async def run(customers: int, runs: int, http: bool) -> None:
    cluster = PostgresCluster.start()
    try:
        admin = await asyncpg.connect(cluster.admin_dsn)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        url = cluster.url("bench")
        await apply_migrations(url)
        orm = await open_orm(url)
        try:
            conn = await asyncpg.connect(url)
            start = time.perf_counter()
            steps: list[tuple[str, float]] = []
            store_x, campaign_y = await without_secondary_indexes(conn, steps, lambda: seed(conn, customers, steps))
            seeded = time.perf_counter() - start
            sizes = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in SEEDED_TABLES}
            await conn.close()
            print(f"seeded in {seeded:.1f} s: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()))
            indexes = [seconds for label, seconds in steps if label.startswith("index ")]
            other = [f"{label} {seconds:.1f} s" for label, seconds in steps if not label.startswith("index ")]
            print(f"  {', '.join(other)}; {len(indexes)} indexes built in {sum(indexes):.1f} s")
            await accounts.create_admin("bench-operator", "bench-password-0123456789", "operator")
            cases = rules(store_x, campaign_y)
            results = []
            for label, rule in cases:

                async def call(rule: dict[str, Any] = rule) -> int:
                    return (await audience.preview(rule))[0]

                times, count = await timed(runs, call)
                results.append((label, times, count, await explain(rule)))
        finally:
            await orm.close_connections()
        over_http = await http_timings(url, cases, runs) if http else []
    finally:
        cluster.stop()
    print(f"\nservices.audience.preview (count + sample of 20), {runs} runs each:")
    for i, (label, times, count, plan) in enumerate(results):
        line = f"  {label:<70} count {count:>7,}  median {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms"
        if over_http:
            http_times, _ = over_http[i]
            line += f"  | HTTP median {statistics.median(http_times):6.1f} ms  max {max(http_times):6.1f} ms"
        print(line)
        print(f"      plan: {plan}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--http", action="store_true", help="also time the route through the real server")
    args = parser.parse_args()
    asyncio.run(run(args.customers, args.runs, args.http))


if __name__ == "__main__":
    main()
