"""A running lucky_draw campaign for the draw tests, created directly in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CouponTemplate
from server.keys import DRAWS, STOCK
from services.forms import DrawsWorker
from services.stock import ClaimsWorker


def table(
    prizes: list[dict[str, Any]], *, sold_out_to: str = "none", free_per_day: int = 1, points_cost: int = 0,
    max_per_day: int = 10, time_zone: str = "Asia/Shanghai",
) -> dict[str, Any]:  # fmt: skip
    return {
        "prizes": prizes, "sold_out_to": sold_out_to, "free_per_day": free_per_day, "points_cost": points_cost,
        "max_per_day": max_per_day, "time_zone": time_zone,
    }  # fmt: skip


async def lucky_campaign(
    client: TestClient, draw: dict[str, Any], *, coupon_stock: int = 100, face_value: int = 500, **fields: Any
) -> tuple[Campaign, CouponTemplate]:
    """An active lucky_draw (started an hour ago) with one coupon (the prizes' coupon_index 0)."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "type": "lucky_draw", "status": "active", "channels": ["miniprogram"], "created_by": 1,
        "content": {"zh-CN": {"title": "抽奖"}}, "starts_at": now - timedelta(hours=1),
        "ends_at": now + timedelta(days=1), "draw": draw,
    }  # fmt: skip
    values.update(fields)
    campaign = await Campaign.create(**values)
    template = await CouponTemplate.create(
        campaign=campaign, kind="fixed", title={"zh-CN": "奖券"}, face_value=face_value, total_stock=coupon_stock,
        per_user_limit=100, validity_kind="relative", valid_days=7,
    )  # fmt: skip
    await client.server.app[STOCK].load_campaign(campaign.id)
    return campaign, template


async def drain(client: TestClient) -> None:
    """Write every decided draw and claim to the database."""
    app = client.server.app
    await DrawsWorker(app[DRAWS], min_idle_ms=0).drain()
    await ClaimsWorker(app[DRAWS].redis, min_idle_ms=0).drain()
