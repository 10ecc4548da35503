"""A running group_buy campaign and its customers, for the group buy tests and bench."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from server.keys import GROUP_BUYS, JOURNEY, REDIS, STOCK
from services.forms import GroupWorker
from tests.stock.fixtures import customers


async def group_campaign(
    client: TestClient, *, size: int = 3, hours: int = 24, max_open: int = 1, virtual_fill: bool = False,
    reward: str = "points", reward_points: int | None = 10, stock: int = 0,
) -> Campaign:  # fmt: skip
    """A running group_buy campaign (with one coupon of ``stock`` when it rewards coupons)."""
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "size": size, "group_hours": hours, "max_open_per_customer": max_open, "virtual_fill": virtual_fill,
        "reward": reward, "reward_points": reward_points if reward == "points" else None,
    }  # fmt: skip
    row = await Campaign.create(
        type="group_buy", status="active", content={"zh-CN": {"title": "拼团"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=2), created_by=1, group_spec=spec,
    )  # fmt: skip
    if reward == "coupons":
        await CouponTemplate.create(
            campaign=row, kind="fixed", title={"zh-CN": "团购券"}, face_value=500, total_stock=stock,
            per_user_limit=1, validity_kind="relative", valid_days=7,
        )  # fmt: skip
        await client.server.app[STOCK].load_campaign(row.id)
    return row


async def people(client: TestClient, count: int, prefix: str) -> tuple[list[dict[str, str]], list[int]]:
    """``count`` customers: their Authorization headers and ids, in the same order."""
    auths = await customers(client, count, prefix)
    ids = await Customer.filter(openid__startswith=f"{prefix}_").order_by("id").values_list("id", flat=True)
    return auths, list(ids)


async def open_groups(client: TestClient, campaign_id: int, leaders: list[dict[str, str]]) -> list[int]:
    """Each leader opens one group at once; their ids in ``leaders`` order."""
    resps = await asyncio.gather(
        *(client.post("/api/v1/groups", json={"campaign_id": campaign_id}, headers=a) for a in leaders)
    )
    ids = []
    for resp in resps:
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    return ids


async def join_all(
    client: TestClient, targets: list[tuple[int, dict[str, str]]], rounds: int = 5
) -> list[tuple[int, str]]:
    """Every (group, customer) joins at once; each answer's (status, error code or "").
    A join shed with ``503 redis_unavailable`` before its script ran is retried, as the
    mini program does (like tests.stock.fixtures.grab_all); any other answer is final."""
    answers: dict[int, tuple[int, str]] = {}
    waiting = list(range(len(targets)))
    for _ in range(rounds):
        resps = await asyncio.gather(
            *(client.post(f"/api/v1/groups/{targets[i][0]}/join", headers=targets[i][1]) for i in waiting)
        )
        for i, resp in zip(waiting, resps, strict=True):
            body = await resp.json()
            answers[i] = (resp.status, body["error"]["code"] if resp.status >= 400 else "")
        waiting = [i for i in waiting if answers[i] == (503, "redis_unavailable")]
        if not waiting:
            break
    return [answers[i] for i in range(len(targets))]


async def drain(client: TestClient) -> int:
    app = client.server.app
    return await GroupWorker(app[REDIS], app[JOURNEY], min_idle_ms=0).drain()


def groups_of(client: TestClient) -> Any:
    return client.server.app[GROUP_BUYS]
