"""A live coupon for grab tests: a running campaign with one coupon, loaded into Redis,
and customers with real access tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from server.keys import SETTINGS, STOCK
from services.core import Principal, issue_access_token


@dataclass
class LiveCoupon:
    campaign: Campaign
    template: CouponTemplate

    @property
    def grab_path(self) -> str:
        return f"/api/v1/coupons/{self.template.id}/grab"


async def live_coupon(
    client: TestClient,
    *,
    stock: int = 10,
    per_user_limit: int = 1,
    face_value: int = 1000,
    budget_limit: int | None = None,
    opens_at: datetime | None = None,
    status: str = "active",
    campaign: dict[str, Any] | None = None,
    stock_buckets: int = 1,
) -> LiveCoupon:
    now = datetime.now(UTC)
    row = await Campaign.create(
        type="flash_sale", status=status, content={"zh-CN": {"title": "秒杀"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), budget_limit=budget_limit,
        created_by=1, **(campaign or {}),
    )  # fmt: skip
    template = await CouponTemplate.create(
        campaign=row, kind="fixed", title={"zh-CN": "立减"}, face_value=face_value, total_stock=stock,
        per_user_limit=per_user_limit, grab_starts_at=opens_at, validity_kind="relative", valid_days=7,
        stock_buckets=stock_buckets,
    )  # fmt: skip
    await client.server.app[STOCK].load_campaign(row.id)
    return LiveCoupon(row, template)


async def customers(client: TestClient, count: int, prefix: str = "o_grab") -> list[dict[str, str]]:
    """``count`` customers and the Authorization headers of their real access tokens."""
    settings = client.server.app[SETTINGS]
    rows = await Customer.bulk_create([Customer(openid=f"{prefix}_{i}") for i in range(count)])
    if not rows or rows[0].id is None:  # some backends do not return ids from bulk inserts
        rows = await Customer.filter(openid__startswith=f"{prefix}_").order_by("id")
    return [
        {"Authorization": "Bearer " + issue_access_token(settings.secret_key, Principal("customer", c.id), 900)}
        for c in rows
    ]


async def grab_all(client: TestClient, path: str, auths: list[dict[str, str]], rounds: int = 5) -> list[int]:
    """Every customer grabs at once; each answer's status, in ``auths`` order. A grab shed
    with ``503 redis_unavailable`` (on a loaded machine some of hundreds wait longer for a
    Redis connection than the pool allows: shed before the grab script runs) is retried
    at once, as the mini program does; any other answer is final."""
    answers: dict[int, int] = {}
    waiting = list(range(len(auths)))
    for _ in range(rounds):
        resps = await asyncio.gather(*(client.post(path, headers=auths[i]) for i in waiting))
        for i, resp in zip(waiting, resps, strict=True):
            answers[i] = resp.status
            if resp.status == 503:
                assert (await resp.json())["error"]["code"] == "redis_unavailable"
        waiting = [i for i in waiting if answers[i] == 503]
        if not waiting:
            break
    return [answers[i] for i in range(len(auths))]
