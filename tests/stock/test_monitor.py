"""The flash-sale monitor: stock and budget left, issued, grab refusals by reason."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.stock.fixtures import customers, grab_all, live_coupon

pytestmark = pytest.mark.both_redis


async def _monitor(client, campaign_id: int) -> dict:
    auth = bearer((await logged_in_admin(client, "reviewer", "mon"))["access_token"])
    resp = await client.get(f"/api/v1/admin/campaigns/{campaign_id}/monitor", headers=auth)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_refusals_by_reason_under_concurrency(client_with, monkeypatch):
    cheap_password_hashing(monkeypatch)
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000, grab_user_max=1000)
    coupon = await live_coupon(client, stock=10, face_value=1000, budget_limit=1_000_000)
    auths = await customers(client, 60)
    statuses = await grab_all(client, coupon.grab_path, auths)
    assert statuses.count(201) == 10
    # Again from the 10 winners: each is at the per-customer limit.
    winners = [a for a, s in zip(auths, statuses, strict=True) if s == 201]
    again = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in winners))
    assert {(await error_of(r))["code"] for r in again} == {"coupon_limit_reached"}
    found = await _monitor(client, coupon.campaign.id)
    assert found["budget_limit"] == 1_000_000
    assert found["budget_left"] == 1_000_000 - 10 * 1000
    [c] = found["coupons"]
    assert c == {
        "template_id": coupon.template.id, "total_stock": 10, "stock_left": 0, "issued": 10,
        "refusals": {"sold_out": 50, "limit": 10},
    }  # fmt: skip


async def test_rate_limited_and_hot_coupons_are_counted(client_with, monkeypatch):
    cheap_password_hashing(monkeypatch)
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000, grab_user_max=2, grab_user_window_ms=60_000)
    coupon = await live_coupon(client, stock=4, stock_buckets=2)
    [auth] = await customers(client, 1, prefix="o_mon")
    for _ in range(4):
        await client.post(coupon.grab_path, headers=auth)
    [c] = (await _monitor(client, coupon.campaign.id))["coupons"]
    assert c["stock_left"] == 3 and c["issued"] == 1
    # 1 granted, 1 over the per-customer limit, 2 over the rate limit.
    assert c["refusals"] == {"limit": 1, "rate_limited": 2}


async def test_not_loaded_and_unknown(client, monkeypatch):
    cheap_password_hashing(monkeypatch)
    coupon = await live_coupon(client, status="draft")
    redis_keys = await _monitor(client, coupon.campaign.id)
    assert redis_keys["budget_left"] is None
    auth = bearer((await logged_in_admin(client, "operator", "op2"))["access_token"])
    resp = await client.get("/api/v1/admin/campaigns/999999/monitor", headers=auth)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
