"""What the token epoch (issue 15) costs, per request, in one run: Redis commands (from
``INFO commandstats``, which counts a script's own calls too: the grab's ``get`` is
grab.lua's budget read inside its ``evalsha``) and wall time of N coupon grabs by customers, N ``GET
/api/v1/staff/me`` by a clerk (the epoch checked: one GET) and N ``GET /api/v1/me``
by customers (no epoch).

    .venv/bin/python -m bench.token_epoch [--requests 400]

The real app in this process (aiohttp TestServer on loopback), a migrated SQLite file
and a redis-server of its own (tests.infra), the test fixtures' live coupon.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from server.app import create_app
from server.db import apply_migrations
from server.settings import Settings
from services.accounts import operators as accounts
from tests.infra import RedisServer, free_port
from tests.stock.fixtures import customers, live_coupon


def _calls(stats: dict[str, Any]) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def _measure(
    redis: Redis, label: str, requests: list[Any], expect: int, n: int
) -> tuple[str, dict[str, int], float]:
    before = _calls(await redis.info("commandstats"))
    started = time.perf_counter()
    for make in requests:
        resp = await make()
        assert resp.status == expect, (label, resp.status, await resp.text())
        resp.release()
    elapsed = time.perf_counter() - started
    after = _calls(await redis.info("commandstats"))
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    delta.pop("info", None)
    return label, delta, elapsed / n * 1e6


async def run(n: int) -> None:
    redis_server = RedisServer.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    database_url = f"sqlite://{workdir}/app.sqlite3"
    await apply_migrations(database_url)
    settings = Settings.from_env(
        env={}, app_env="test", port=free_port(), data_dir=workdir / "data", database_url=database_url,
        secret_key="bench-secret-key-0123456789abcdef0123456789", auto_migrate=False, run_workers=False,
        redis_url=redis_server.url,
    )  # fmt: skip
    redis = Redis.from_url(redis_server.url)
    try:
        async with TestClient(TestServer(create_app(settings), host="127.0.0.1", port=settings.port)) as client:
            coupon = await live_coupon(client, stock=n)
            auths = await customers(client, n, "o_epoch")
            store = await accounts.create_store("EP1", "Epoch store", "Shanghai", 31.2, 121.5)
            await accounts.create_staff("clerk", "clerk-secret-0123", "Clerk", "clerk", store.id)
            login = await client.post(
                "/api/v1/staff/auth/login", json={"username": "clerk", "password": "clerk-secret-0123"}
            )
            clerk = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
            rows = [
                await _measure(
                    redis,
                    "customer grab",
                    [lambda a=a: client.post(coupon.grab_path, headers=a) for a in auths],
                    201,
                    n,
                ),
                await _measure(
                    redis, "customer GET /me", [lambda a=a: client.get("/api/v1/me", headers=a) for a in auths], 200, n
                ),
            ]
            epoch_keys_after_customers = len(await redis.keys("account-epoch:*"))
            rows += [
                await _measure(
                    redis, "staff GET /staff/me", [lambda: client.get("/api/v1/staff/me", headers=clerk)] * n, 200, n
                ),
            ]
    finally:
        await redis.aclose()
        redis_server.stop()
    print(f"account-epoch keys after the customers' requests: {epoch_keys_after_customers}")
    for label, delta, micros in rows:
        per = ", ".join(f"{name} {count / n:.2f}" for name, count in sorted(delta.items()))
        print(f"{label:22s} n={n}  Redis commands per request: {per or 'none'}  wall {micros:.0f} µs/request")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
