"""The campaign builder's `stock_buckets` (hot coupons, docs/stock.md): accepted on a
public flash sale's coupon, answered back, refused elsewhere with a documented 422."""

from __future__ import annotations

import pytest

from models.campaigns import CouponTemplate
from tests.campaigns.fixtures import campaign_body, coupon_body
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin

BASE = "/api/v1/admin/campaigns"


async def _operator(client, monkeypatch) -> dict[str, str]:
    cheap_password_hashing(monkeypatch)
    return bearer((await logged_in_admin(client, "operator", "op"))["access_token"])


async def test_a_flash_sale_coupon_takes_stock_buckets(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    body = campaign_body(type="flash_sale", coupons=[coupon_body(stock_buckets=4), coupon_body()])
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    coupons = (await resp.json())["coupons"]
    assert [c["stock_buckets"] for c in coupons] == [4, 1]
    assert sorted(await CouponTemplate.all().values_list("stock_buckets", flat=True)) == [1, 4]


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "offer", "coupons": [coupon_body(stock_buckets=2)]},
        {"type": "flash_sale", "visibility": "targeted", "audience_rule": {"all": []},
         "coupons": [coupon_body(stock_buckets=2)]},
        {"type": "flash_sale", "coupons": [coupon_body(stock_buckets=2, points_price=100)]},
        {"type": "flash_sale", "coupons": [coupon_body(stock_buckets=17)]},
        {"type": "flash_sale", "coupons": [coupon_body(stock_buckets=0)]},
        {"type": "flash_sale", "coupons": [coupon_body(stock_buckets="4")]},
    ],
)  # fmt: skip
async def test_stock_buckets_refused_where_grabs_cannot_use_them(client, monkeypatch, overrides):
    auth = await _operator(client, monkeypatch)
    resp = await client.post(BASE, json=campaign_body(**overrides), headers=auth)
    assert resp.status == 422
    assert (await error_of(resp))["code"] == "validation_failed"
    assert not await CouponTemplate.exists()
