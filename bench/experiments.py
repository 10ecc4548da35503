"""An experiment's results over 1,000,000 exposures in PostgreSQL: the time of
``services.experiments.results`` (the one aggregation statement, the SRM count and the
statistics), 5 runs, with every metric asked for (primary ``join``, guardrails ``grab``,
``redemption``, ``revenue``), and the EXPLAIN ANALYZE of the aggregation.

    .venv/bin/python -m bench.experiments [--exposures 1000000] [--runs 5]

A throwaway PostgreSQL cluster on loopback (tests.infra.PostgresCluster), migrated like
production, seeded server-side with ``INSERT ... SELECT generate_series``: the customers,
one exposure each (arms a/b/c and a holdout at 30/30/30/10), joins to the campaign (12%,
15% in arm b, 50 points more for the 5% who joined another campaign in the pre-period; none
in the holdout), vouchers and redemptions with order amounts, and a
pre-period (another campaign's joins, vouchers and redemptions in the 28 days before the
start) for CUPED; then VACUUM ANALYZE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from tortoise.transactions import in_transaction

from models.campaigns import CouponTemplate
from models.experiments import Experiment
from server.db import apply_migrations, open_orm
from services.core import Params
from services.experiments import results
from services.experiments.results import _results_sql, _Window
from tests.infra import PostgresCluster
from tests.journey.fixtures import make_campaign

ARMS = [
    {"key": "a", "name": "control", "weight": 30, "holdout": False},
    {"key": "b", "name": "bigger coupon", "weight": 30, "holdout": False},
    {"key": "c", "name": "new banner", "weight": 30, "holdout": False},
    {"key": "holdout", "name": "no contact", "weight": 10, "holdout": True},
]


async def seed(conn: asyncpg.Connection, n: int, campaign: int, template: int, other: int, other_template: int,
               experiment: int, start: datetime) -> list[tuple[str, float]]:  # fmt: skip
    steps: list[tuple[str, float]] = []

    async def step(label: str, sql: str, *args: object) -> None:
        t = time.perf_counter()
        await conn.execute(sql, *args)
        steps.append((label, time.perf_counter() - t))

    pre = start - timedelta(days=10)
    await step(
        "customers",
        f"""
        INSERT INTO customers (openid, interest_tags, membership_tier, created_at)
        SELECT 'o_bench_' || g, '[]', 'standard', $1 FROM generate_series(1, {n}) g""",
        start - timedelta(days=90),
    )
    # arm by a fixed permutation of the id: 0-2 a, 3-5 b, 6-8 c, 9 holdout (30/30/30/10)
    await step(
        "exposures",
        f"""
        INSERT INTO experiment_exposures (experiment_id, customer_id, arm, bucket_version, surface, exposed_at)
        SELECT $1, c.id, CASE WHEN (c.id * 7919) % 10 < 3 THEN 0 WHEN (c.id * 7919) % 10 < 6 THEN 1
                              WHEN (c.id * 7919) % 10 < 9 THEN 2 ELSE 3 END,
               1, 'feed', $2::timestamptz + (random() * interval '13 days')
        FROM customers c LIMIT {n}""",
        experiment,
        start,
    )
    await step(
        "pre-period joins",
        """
        INSERT INTO participations (campaign_id, customer_id, status, progress, joined_at)
        SELECT $1, id, 'joined', 0, $2::timestamptz FROM customers WHERE random() < 0.05""",
        other,
        pre,
    )
    # Those who joined before are likelier to join again (what CUPED uses).
    await step(
        "joins",
        """
        INSERT INTO participations (campaign_id, customer_id, status, progress, joined_at)
        SELECT $1, e.customer_id, 'joined', 0, e.exposed_at + interval '1 hour' FROM experiment_exposures e
        LEFT JOIN participations before ON before.campaign_id = $2 AND before.customer_id = e.customer_id
        WHERE e.arm <> 3 AND random() < CASE WHEN e.arm = 1 THEN 0.15 ELSE 0.12 END
                                        + CASE WHEN before.id IS NULL THEN 0 ELSE 0.5 END""",
        campaign,
        other,
    )
    source = "participations WHERE campaign_id = $1::bigint AND random() < 0.6"
    for label, camp, tmpl, since in (
        ("vouchers", campaign, template, None), ("pre-period vouchers", other, other_template, pre),
    ):  # fmt: skip
        issued = "p.joined_at" if since is None else "$3::timestamptz"
        args: list[object] = [camp, tmpl] + ([] if since is None else [since])
        await step(
            label,
            f"""
            INSERT INTO vouchers (claim_id, campaign_id, template_id, customer_id, code, status, face_value,
                                  valid_from, valid_until, issued_at, stock_returned)
            SELECT 'bench-' || $1::bigint || '-' || p.customer_id, $1::bigint, $2::bigint, p.customer_id,
                   'B' || $1::bigint || 'X' || p.customer_id,
                   'available', 500, {issued}, {issued} + interval '30 days', {issued}, false
            FROM {source.replace("participations", "participations p")}""",
            *args,
        )
    await conn.execute(
        "INSERT INTO stores (code, name, city, latitude, longitude, is_active, created_at, address, state)"
        " VALUES ('B1', 'bench', 'Shanghai', 31.2, 121.5, true, now(), '', 'open')"
    )
    await conn.execute(
        "INSERT INTO staff_members (username, password_hash, display_name, role, is_active, created_at, store_id,"
        " token_epoch, must_change_password) SELECT 'bench-clerk', 'x', 'clerk', 'clerk', true, now(), id, 0, false"
        " FROM stores WHERE code = 'B1'"
    )
    await step(
        "redemptions",
        """
        INSERT INTO redemptions (voucher_id, store_id, staff_id, customer_id, campaign_id, template_id, face_value,
                                 order_amount, created_at)
        SELECT v.id, s.id, st.id, v.customer_id, v.campaign_id, v.template_id, v.face_value,
               2000 + (random() * 28000)::int, v.issued_at + interval '2 days'
        FROM vouchers v, stores s, staff_members st WHERE s.code = 'B1' AND st.username = 'bench-clerk'
          AND random() < 0.4""",
    )
    await step("VACUUM ANALYZE", "VACUUM ANALYZE")
    return steps


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backend_cpu(
    conn: asyncpg.Connection, sql: str, values: list[object], experiment: int, runs: int
) -> list[float]:
    """The CPU time the database server spends on one results call (user + system of the
    backend, from /proc): what a busy machine does not inflate, unlike the wall time."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    counts = (
        "SELECT arm, COUNT(*), SUM(CASE WHEN bucket_version = 1 THEN 1 ELSE 0 END) FROM experiment_exposures"
        " WHERE experiment_id = $1 GROUP BY arm"
    )
    out = []
    for _ in range(runs):
        before = _cpu_seconds(pid)
        async with conn.transaction():
            # No parallel workers here: their CPU is not the backend's, and would go uncounted.
            settings = ("jit = off", "enable_nestloop = off", "work_mem = '64MB'")
            for setting in (*settings, "max_parallel_workers_per_gather = 0"):
                await conn.execute(f"SET LOCAL {setting}")
            await conn.fetch(sql, *values)
        async with conn.transaction():
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            await conn.fetch(counts, experiment)
        out.append(_cpu_seconds(pid) - before)
    return out


async def run(n: int, runs: int, full_plan: bool = False) -> None:
    cluster = PostgresCluster.start()
    try:
        admin = await asyncpg.connect(cluster.admin_dsn)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        url = cluster.url("bench")
        await apply_migrations(url)
        orm = await open_orm(url)
        try:
            now = datetime.now(UTC)
            start = now - timedelta(days=14)
            campaign = await make_campaign(coupons=1, starts_at=start, ends_at=now + timedelta(days=14))
            other = await make_campaign(coupons=1, starts_at=start - timedelta(days=40), ends_at=start)
            template = await CouponTemplate.get(campaign_id=campaign.id)
            other_template = await CouponTemplate.get(campaign_id=other.id)
            experiment = await Experiment.create(
                campaign_id=campaign.id, name="bench", salt="bench", arms=ARMS, primary_metric="join",
                guardrails=["grab", "redemption", "revenue"], status="running", layer=f"campaigns:{campaign.id}",
                traffic_lo=0, traffic_hi=10_000, started_at=start, created_by=1,
            )  # fmt: skip
            conn = await asyncpg.connect(url)
            t = time.perf_counter()
            steps = await seed(conn, n, campaign.id, template.id, other.id, other_template.id, experiment.id, start)
            print(f"seeded in {time.perf_counter() - t:.1f} s: " + ", ".join(f"{k} {s:.1f} s" for k, s in steps))
            for table in ("experiment_exposures", "participations", "vouchers", "redemptions"):
                print(f"  {table}: {await conn.fetchval(f'SELECT count(*) FROM {table}'):,}")
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                out = await results(experiment, datetime.now(UTC))
                times.append((time.perf_counter() - t) * 1000)
            print(f"\nresults over {out.exposures:,} exposures, {runs} runs: median {statistics.median(times):.0f} ms,"
                  f" max {max(times):.0f} ms (each: {', '.join(f'{x:.0f}' for x in times)})")  # fmt: skip
            for arm in out.arms:
                join = arm.metrics["join"]
                lift = next((c for c in arm.comparisons if c.metric == "join"), None)
                extra = "" if lift is None else (
                    f", join lift {lift.difference:+.4f} [{lift.difference_interval.low:+.4f}, "
                    f"{lift.difference_interval.high:+.4f}], sequential [{lift.sequential_interval.low:+.4f}, "
                    f"{lift.sequential_interval.high:+.4f}], chance to win {lift.chance_to_win:.3f}, "
                    f"CUPED variance -{lift.variance_reduction:.1%}"
                )  # fmt: skip
                print(f"  {arm.key:<8} exposures {arm.exposures:>8,}  join {join.mean:.4f}  revenue {arm.revenue:>12,}"
                      f"{extra}")  # fmt: skip
            print(f"  srm: chi2 {out.srm.chi2:.2f}, p {out.srm.p_value:.3g}, flagged {out.srm.flagged}")
            p = Params("postgres")
            w = _Window(start, datetime.now(UTC), start - timedelta(days=experiment.pre_period_days))
            sql = _results_sql(p, experiment, ["join", "grab", "redemption", "revenue"], w)
            async with in_transaction() as tx:  # as results() runs it
                for setting in ("jit = off", "enable_nestloop = off", "work_mem = '64MB'"):
                    await tx.execute_query(f"SET LOCAL {setting}")
                plan = await tx.execute_query("EXPLAIN ANALYZE " + sql, p.values)
            cpu = await backend_cpu(conn, sql, p.values, experiment.id, runs)
            print(f"  PostgreSQL CPU for the two statements (the fold + the exposure counts), {runs} runs: "
                  + ", ".join(f"{x:.2f} s" for x in cpu))  # fmt: skip
            print("\nEXPLAIN ANALYZE (top and timing):")
            lines = [str(row[0]) for row in plan[1]]
            for line in lines if full_plan else lines[:3] + lines[-2:]:
                print("   ", line)
            await conn.close()
        finally:
            await orm.close_connections()
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plan", action="store_true", help="print the whole EXPLAIN ANALYZE")
    args = parser.parse_args()
    asyncio.run(run(args.exposures, args.runs, args.plan))


if __name__ == "__main__":
    main()
