"""What the metrics cost a grab (issue 19): CPU per grab with the recording calls and
without them, in one run, in turns.

The real app (``create_app``) on a loopback port, a real Redis and a SQLite database;
grabs sent 50 at a time by a client in the same process. "Without" replaces the two
recording calls the grab path makes (the middleware's ``observe_request`` and the
handler's ``count_grab``) by no-ops; "with" is the server as shipped. Rounds alternate
the order (with, without / without, with) so drift on a loaded machine falls on both.
The figure is the process's CPU time per grab (server and client together: the
difference between the two is the metrics' share; the client's share is the same in
both). Also timed alone: the two calls in a tight loop.

    .venv/bin/python -m bench.metrics_cost [--grabs 2000] [--rounds 4] [--multiproc]

``--multiproc`` sets ``PROMETHEUS_MULTIPROC_DIR`` first, as ``--workers N`` does (each
sample a write to a memory-mapped file instead of a float in memory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--grabs", type=int, default=2000, help="grabs per variant per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--multiproc", action="store_true", help="prometheus-client's multiprocess mode")
    return parser.parse_args()


ARGS = parse_args()
METRICS_DIR = tempfile.mkdtemp(prefix="bench-metrics-") if ARGS.multiproc else None
if METRICS_DIR is not None:  # before prometheus_client is imported: it reads it then
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR

import aiohttp  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

import handlers.customer.coupons as coupons_handler  # noqa: E402
import server.middlewares as middlewares  # noqa: E402
from models.campaigns import Campaign, CouponTemplate  # noqa: E402
from models.customers import Customer  # noqa: E402
from server.app import create_app  # noqa: E402
from server.db import apply_migrations  # noqa: E402
from server.keys import STOCK  # noqa: E402
from server.metrics import count_grab, observe_request  # noqa: E402
from server.settings import Settings  # noqa: E402
from services.core import Principal, issue_access_token  # noqa: E402
from tests.infra import RedisServer, free_port  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-0123456789"
CONCURRENCY = 50


def _nothing(*_: object) -> None:
    return None


def _calls_alone(n: int = 200_000) -> float:
    """µs per grab of the two recording calls, in a tight loop."""
    route = "/api/v1/coupons/{coupon_id}/grab"
    started = time.process_time()
    for _ in range(n):
        observe_request("POST", route, 201, 0.0012)
        count_grab("ok")
    return (time.process_time() - started) / n * 1e6


async def main() -> None:
    redis = RedisServer.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-db-"))
    try:
        database_url = f"sqlite://{workdir}/app.sqlite3"
        await apply_migrations(database_url)
        settings = Settings.from_env(
            env={}, app_env="test", port=free_port(), data_dir=workdir / "data", database_url=database_url,
            redis_url=redis.url, secret_key=SECRET, auto_migrate=False, run_workers=False, log_level="WARNING",
            grab_ip_rate=1_000_000.0, grab_ip_burst=10_000_000, grab_user_max=1_000_000, uvloop=False,
        )  # fmt: skip
        app = create_app(settings)
        server = TestServer(app, host="127.0.0.1", port=settings.port)
        await server.start_server()
        try:
            now = datetime.now(UTC)
            campaign = await Campaign.create(
                type="flash_sale", status="active", content={"zh-CN": {"title": "bench"}}, channels=["miniprogram"],
                starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1,
            )  # fmt: skip
            total = ARGS.grabs * ARGS.rounds * 2 + 1000  # and the warm-up
            template = await CouponTemplate.create(
                campaign=campaign, kind="fixed", title={"zh-CN": "bench"}, face_value=100, total_stock=total,
                per_user_limit=1, validity_kind="relative", valid_days=7,
            )  # fmt: skip
            await app[STOCK].load_campaign(campaign.id)
            # One grab per customer (a coupon's per-customer limit is checked on every grab).
            await Customer.bulk_create([Customer(openid=f"o_bench_metrics_{i}") for i in range(total)])
            ids = await Customer.filter(openid__startswith="o_bench_metrics_").values_list("id", flat=True)
            tokens = iter(
                [{"Authorization": "Bearer " + issue_access_token(SECRET, Principal("customer", int(i)), 3600)}
                 for i in ids]
            )  # fmt: skip
            url = f"http://127.0.0.1:{settings.port}/api/v1/coupons/{template.id}/grab"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

                async def grab() -> int:
                    async with session.post(url, headers=next(tokens)) as resp:
                        body = await resp.read()
                        if resp.status != 201:
                            raise SystemExit(f"grab answered {resp.status}: {body[:300]!r}")
                        return resp.status

                async def burst(n: int) -> float:
                    started = time.process_time()
                    for _ in range(n // CONCURRENCY):
                        statuses = await asyncio.gather(*(grab() for _ in range(CONCURRENCY)))
                        assert all(s == 201 for s in statuses), statuses
                    return (time.process_time() - started) / n * 1e6

                def metrics_on(on: bool) -> None:
                    middlewares.observe_request = observe_request if on else _nothing  # type: ignore[assignment]
                    coupons_handler.count_grab = count_grab if on else _nothing  # type: ignore[assignment]

                await burst(500)  # warm-up: caches, connections
                figures: dict[bool, list[float]] = {True: [], False: []}
                for r in range(ARGS.rounds):
                    for on in (True, False) if r % 2 == 0 else (False, True):
                        metrics_on(on)
                        figures[on].append(await burst(ARGS.grabs))
                metrics_on(True)
            with_ = statistics.median(figures[True])
            without = statistics.median(figures[False])
            mode = "multiprocess (PROMETHEUS_MULTIPROC_DIR)" if ARGS.multiproc else "one process"
            print(f"metrics mode: {mode}; {ARGS.rounds} rounds x {ARGS.grabs} grabs per variant, {CONCURRENCY} at once")
            for label, on, median in (("with metrics:   ", True, with_), ("without metrics:", False, without)):
                rounds = ", ".join(f"{x:.0f}" for x in figures[on])
                print(f"{label} {median:7.1f} us CPU per grab (rounds: {rounds})")
            print(f"difference:      {with_ - without:+7.1f} us ({(with_ - without) / without * 100:+.1f}%)")
            print(f"the two recording calls alone: {_calls_alone():.2f} us per grab")
        finally:
            await server.close()
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if METRICS_DIR is not None:
            shutil.rmtree(METRICS_DIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
