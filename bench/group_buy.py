"""Group buy joins (issue 17): ``POST /api/v1/groups/{id}/join`` on the real app against
the bare join script (the ceiling), measured in one run on the same machine and Redis.

    .venv/bin/python -m bench.group_buy [--groups 1000] [--size 3] [--concurrency 64] [--warm-risk] [--profile F]

Set-up, in one process (like the tests: aiohttp's test server, so client and server share
one event loop and one core; figures are for comparing the two targets, not capacity): a
redis-server (tests.infra.RedisServer), a migrated SQLite file, a running group_buy
campaign (points reward), G groups opened through the API, and G x (size - 1) customers
with access tokens. Each joiner takes one free place (group i // (size - 1)), so every
join is admitted and fills its group at the last place: the measured path is the full
decision, with the fill's stream entry.

* ours: every join over HTTP with ``--concurrency`` in flight: token, campaign checks
  (running, channel, audience, exclusivity, budget), WeChat's risk rank (cold: one
  emulator call per customer, as the first action of a customer costs; ``--warm-risk``
  asks it for everyone before the clock starts), the Lua decision, the answer (the group
  with its members' nicknames, one database read).
* bare Lua: the same group_join.lua, same keys and arguments, on a second campaign's
  groups (opened with group_open.lua), at the same concurrency, straight from a Redis
  client: no HTTP, no checks.

Afterwards the group worker drains and the bench checks the database: every group full,
no member twice, one reward ledger line per member (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bench.harness import free_port
from models.campaigns import Campaign
from models.customers import Customer
from models.group_buy import GroupMember
from models.journey import PointsEntry
from server.app import create_app
from server.db import apply_migrations
from server.keys import GROUP_BUYS, JOURNEY, POLICIES, REDIS, WECHAT
from server.settings import Settings
from services.core import Principal, call_script, issue_access_token, text
from services.forms import GroupWorker, screen
from services.forms.group_buy import GROUP_STREAMS, GroupKeys
from tests.infra import RedisServer

SECRET = "bench-group-buy-secret-0123456789abcdef"


async def _pace(count: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> tuple[float, list[Any]]:
    """Run ``one(i)`` for every i with ``concurrency`` in flight: (seconds, answers)."""
    next_i = 0
    out: list[Any] = [None] * count

    async def lane() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            out[i] = await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started, out


async def _campaign(size: int) -> Campaign:
    now = datetime.now(UTC)
    spec = {"size": size, "group_hours": 24, "max_open_per_customer": 1, "virtual_fill": False, "reward": "points",
            "reward_points": 5}  # fmt: skip
    return await Campaign.create(
        type="group_buy", status="active", content={"zh-CN": {"title": "拼团"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=2), created_by=1, group_spec=spec,
    )  # fmt: skip


async def _people(prefix: str, count: int, settings: Settings) -> tuple[list[int], list[dict[str, str]]]:
    await Customer.bulk_create([Customer(openid=f"{prefix}_{i}") for i in range(count)], batch_size=1000)
    ids = list(await Customer.filter(openid__startswith=f"{prefix}_").order_by("id").values_list("id", flat=True))
    auths = [
        {"Authorization": "Bearer " + issue_access_token(settings.secret_key, Principal("customer", c), 3600)}
        for c in ids
    ]
    return ids, auths


async def run(args: argparse.Namespace) -> int:
    redis_server = RedisServer.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-group-"))
    db_url = f"sqlite://{workdir / 'app.sqlite3'}"
    await apply_migrations(db_url)
    settings = Settings.from_env(
        env={}, app_env="test", port=free_port(), data_dir=workdir / "data", database_url=db_url, secret_key=SECRET,
        auto_migrate=False, run_workers=False, redis_url=redis_server.url, wechat_timeout=5.0,
        grab_ip_burst=1_000_000, grab_ip_rate=1_000_000,
    )  # fmt: skip
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=settings.port))
    await client.start_server()
    try:
        app = client.server.app
        joins = args.groups * (args.size - 1)
        campaign = await _campaign(args.size)
        _, leader_auths = await _people("o_gl", args.groups, settings)
        group_ids: list[int] = []
        for auth in leader_auths:
            resp = await client.post("/api/v1/groups", json={"campaign_id": campaign.id}, headers=auth)
            assert resp.status == 201, await resp.text()
            group_ids.append((await resp.json())["id"])
        joiner_ids, joiner_auths = await _people("o_gj", joins, settings)
        if args.warm_risk:
            for customer_id in joiner_ids:
                await screen(
                    redis=app[REDIS], wechat=app[WECHAT], policy=app[POLICIES].risk, customer_id=customer_id,
                    client_ip="127.0.0.1",
                )  # fmt: skip

        shed: list[str] = []

        async def ours(i: int) -> int:
            # A join shed with 503 before its script ran (the Redis pool's wait, on a loaded
            # machine) is sent again, as the mini program does; the retries are counted.
            for _ in range(5):
                resp = await client.post(
                    f"/api/v1/groups/{group_ids[i // (args.size - 1)]}/join", headers=joiner_auths[i]
                )
                body = await resp.json()
                if resp.status != 503:
                    break
                shed.append(body["error"]["code"])
            return resp.status

        # Unmeasured warm-up at the same concurrency: the campaign snapshot cached, the
        # Redis and database pools' connections made (a cold start is not the join's cost).
        async def warm(i: int) -> int:
            resp = await client.get(f"/api/v1/campaigns/{campaign.id}/groups", headers=joiner_auths[i])
            await resp.read()
            return resp.status

        await _pace(4 * args.concurrency, args.concurrency, warm)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        ours_s, statuses = await _pace(joins, args.concurrency, ours)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)

        # The ceiling: the same script on a second campaign's groups, straight from Redis.
        bare = await _campaign(args.size)
        groups = app[GROUP_BUYS]
        await groups.load(bare.id)
        keys = GroupKeys(bare.id)
        now_ms = int(time.time() * 1000)
        exp_ms = now_ms + 3600_000
        bare_groups = list(range(10_000_000, 10_000_000 + args.groups))
        for n, group_id in enumerate(bare_groups):
            await call_script(
                groups._open, keys.script_keys(group_id), [group_id, 9_000_000 + n, args.size, exp_ms, now_ms, 1]
            )

        async def bare_join(i: int) -> str:
            group_id = bare_groups[i // (args.size - 1)]
            reply = await call_script(
                groups._join, keys.script_keys(group_id), [group_id, 8_000_000 + i, now_ms, 1, 60]
            )
            return text(reply[0])

        bare_s, replies = await _pace(joins, args.concurrency, bare_join)
        # Its decisions name no real customers: not for the database.
        await app[REDIS].srem(GROUP_STREAMS, keys.stream)
        await app[REDIS].delete(keys.stream)

        await GroupWorker(app[REDIS], app[JOURNEY], min_idle_ms=0).drain()
        ok = statuses.count(200) == joins and replies.count("ok") == joins
        members = await GroupMember.filter(group_id__in=group_ids).values_list("group_id", "customer_id")
        ok = ok and len(members) == args.groups * args.size and len(set(members)) == len(members)
        rewarded = await PointsEntry.filter(reason="group_reward", campaign_id=campaign.id).count()
        ok = ok and rewarded == args.groups * args.size
        print(f"groups {args.groups} of {args.size}, {joins} joins, concurrency {args.concurrency}, "
              f"risk rank {'warm' if args.warm_risk else 'cold'}")  # fmt: skip
        print(f"ours (HTTP):  {joins / ours_s:8.0f} joins/s  ({ours_s:.2f} s; statuses {sorted(set(statuses))})")
        print(f"shed and sent again: {len(shed)} ({dict(Counter(shed))})")
        print(f"bare Lua:     {joins / bare_s:8.0f} joins/s  ({bare_s:.2f} s)")
        print(f"ours / bare:  {bare_s / ours_s:8.1%}")
        print(f"check: {'ok' if ok else 'FAILED'} ({len(members)} members written, {rewarded} rewarded)")
        return 0 if ok else 1
    finally:
        await client.close()
        redis_server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warm-risk", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of the HTTP joins (client and server) to this file")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
