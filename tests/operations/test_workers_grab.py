"""A flash sale against ``--workers 2`` (``WORKERS=2``) over real HTTP: no oversell, every
grab written by the children's claims workers, the grabs counted in ``GET /metrics``
across both processes, and the claims worker's JSON log line carrying the id of the
request whose grab it wrote."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.vouchers import Voucher
from server.db import open_orm
from services.core import Principal, issue_access_token
from services.stock import CampaignKeys, Stock
from tests.conftest import TEST_SECRET
from tests.infra import free_port
from tests.operations.procs import ServerProcess, server_env

pytestmark = pytest.mark.timeout(600)

STOCK = 40
CUSTOMERS = 240


async def _sale(redis: Redis) -> tuple[int, int, list[dict[str, str]]]:
    """A running campaign with one coupon of STOCK, loaded into Redis, and CUSTOMERS
    customers' Authorization headers."""
    now = datetime.now(UTC)
    campaign = await Campaign.create(
        type="flash_sale", status="active", content={"zh-CN": {"title": "秒杀"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1,
    )  # fmt: skip
    template = await CouponTemplate.create(
        campaign=campaign, kind="fixed", title={"zh-CN": "立减"}, face_value=500, total_stock=STOCK,
        per_user_limit=1, validity_kind="relative", valid_days=7,
    )  # fmt: skip
    await Stock(redis).load_campaign(campaign.id)
    await Customer.bulk_create([Customer(openid=f"o_w2_{i}") for i in range(CUSTOMERS)])
    rows = await Customer.filter(openid__startswith="o_w2_").order_by("id")
    auths = [
        {"Authorization": "Bearer " + issue_access_token(TEST_SECRET, Principal("customer", c.id), 900)} for c in rows
    ]
    return campaign.id, template.id, auths


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _sample(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_flash_sale_on_two_workers(database_url: str, redis_url: str, redis: Redis) -> None:
    orm = await open_orm(database_url)
    try:
        campaign_id, template_id, auths = await _sale(redis)
        env = server_env(
            PORT=str(free_port()), DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY=TEST_SECRET,
            APP_ENV="test", AUTO_MIGRATE="false", WORKERS="2", LOG_FORMAT="json", SCHEDULER_INTERVAL="1",
        )  # fmt: skip
        server = await ServerProcess.start(env=env)
        try:
            await server.wait_ready()
            assert len(await server.pids_until(2)) == 2
            path = f"{server.base}/api/v1/coupons/{template_id}/grab"
            rid = "grab-rid-0001"
            connector = aiohttp.TCPConnector(limit=0, force_close=True)  # new connections: both workers get grabs
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.post(path, headers={**auths[0], "X-Request-ID": rid}) as resp:
                    assert resp.status == 201, await resp.text()
                    assert resp.headers["X-Request-ID"] == rid
                # The claims worker (in one of the children) writes it and logs under its request id.
                await _until(lambda: Voucher.filter(template_id=template_id).exists(), 60, "the first voucher")

                def claims_lines() -> list[dict[str, Any]]:
                    lines = [json.loads(line) for line in server.stderr if line.startswith("{")]
                    return [line for line in lines if line["logger"] == "wxcampaign.claims"]

                async def logged() -> bool:
                    return any(line.get("request_id") == rid for line in claims_lines())

                await _until(logged, 30, "the claims worker's log line")
                (line,) = [line for line in claims_lines() if line.get("request_id") == rid]
                assert line["level"] == "INFO" and rid in line["request_ids"]
                assert line["pid"] != server.process.pid

                statuses: dict[int, int] = {}
                waiting = list(range(1, CUSTOMERS))
                for _ in range(5):  # a grab shed with 503 redis_unavailable is retried, as the app does
                    replies = await asyncio.gather(*(session.post(path, headers=auths[i]) for i in waiting))
                    for i, reply in zip(waiting, replies, strict=True):
                        statuses[i] = reply.status
                        reply.release()
                    waiting = [i for i in waiting if statuses[i] == 503]
                    if not waiting:
                        break
                granted = sum(1 for s in statuses.values() if s == 201)
                assert granted == STOCK - 1, sorted(statuses.values())
                assert set(statuses.values()) <= {201, 409}, sorted(set(statuses.values()))

                async def all_written() -> bool:
                    return await Voucher.filter(template_id=template_id).count() == STOCK

                await _until(all_written, 120, "every voucher written")
                left = await redis.hget(CampaignKeys(campaign_id).coupon(template_id), "stock")
                assert int(left) == 0

                async with session.get(server.base + "/metrics") as resp:
                    assert resp.status == 200
                    assert resp.content_type == "text/plain"
                    metrics = await resp.text()
            # Counted in both processes, read from either: the sum is every grab.
            assert _sample(metrics, "wxcampaign_grab_outcomes_total", outcome="ok") == STOCK
            assert _sample(metrics, "wxcampaign_grab_outcomes_total", outcome="coupon_sold_out") == CUSTOMERS - STOCK
            grab_route = "/api/v1/coupons/{coupon_id}/grab"
            counted = _sample(metrics, "wxcampaign_http_request_duration_seconds_count", route=grab_route, status="201")
            assert counted == STOCK
            assert _sample(metrics, "wxcampaign_worker_pass_seconds_count", worker="claims") >= 1
        finally:
            code = await server.stop(grace=90)
        assert code == 0, server.output()
        assert await Voucher.filter(template_id=template_id).count() == STOCK  # none twice after the drain
    finally:
        await orm.close_connections()
