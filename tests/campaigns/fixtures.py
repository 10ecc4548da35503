"""Builders for campaign test data: valid bodies with overridable parts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any


def iso(dt: datetime) -> str:
    return dt.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


def coupon_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "fixed",
        "title": {"zh-CN": "满减券", "en": "10 yuan off"},
        "face_value": 1000,
        "total_stock": 100,
        "per_user_limit": 1,
        "validity": {"kind": "relative", "days": 30},
    }
    body.update(overrides)
    return body


def campaign_body(**overrides: Any) -> dict[str, Any]:
    start = now() + timedelta(days=1)
    body: dict[str, Any] = {
        "type": "offer",
        "content": {
            "zh-CN": {"title": "双十二优惠", "summary": "全场满减"},
            "en": {"title": "Double 12 deals", "summary": "Money off everything"},
        },
        "tags": ["coffee", "bakery"],
        "categories": ["drinks"],
        "starts_at": iso(start),
        "ends_at": iso(start + timedelta(days=7)),
        "channels": ["miniprogram"],
        "coupons": [coupon_body()],
        "budget_limit": 100_000,
    }
    body.update(copy.deepcopy(overrides))
    return body
