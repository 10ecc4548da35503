"""Builders for customer-journey tests: live campaigns, customers with tokens, signed
integration requests."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from server.keys import REDIS, SETTINGS
from services.activity import integrations
from services.core import Actor, Principal, issue_access_token
from services.stock import ClaimsWorker


async def make_campaign(*, coupons: int = 0, coupon: dict[str, Any] | None = None, **fields: Any) -> Campaign:
    """A running campaign (active, started an hour ago, ends in a day), created directly."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "type": "offer", "status": "active", "channels": ["miniprogram"], "created_by": 1,
        "content": {"zh-CN": {"title": "优惠", "summary": "全场"}, "en": {"title": "Deals", "summary": "All"}},
        "starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(days=1),
    }  # fmt: skip
    values.update(fields)
    campaign = await Campaign.create(**values)
    for i in range(coupons):
        await CouponTemplate.create(
            **{
                "campaign": campaign, "kind": "fixed", "title": {"zh-CN": f"券{i}", "en": f"Coupon {i}"},
                "face_value": 500, "total_stock": 10, "per_user_limit": 1, "validity_kind": "relative",
                "valid_days": 7, **(coupon or {}),
            }
        )  # fmt: skip
    return campaign


async def challenge(metric: str, target: int, **fields: Any) -> Campaign:
    return await make_campaign(type="challenge", goal_metric=metric, goal_target=target, **fields)


@dataclass
class Shopper:
    id: int
    openid: str
    headers: dict[str, str]


async def shoppers(client: TestClient, count: int, prefix: str = "o_j", **fields: Any) -> list[Shopper]:
    """``count`` customers with real access tokens."""
    secret = client.server.app[SETTINGS].secret_key
    out = []
    for i in range(count):
        row = await Customer.create(openid=f"{prefix}_{i}", **fields)
        token = issue_access_token(secret, Principal("customer", row.id), 900)
        out.append(Shopper(row.id, row.openid, {"Authorization": f"Bearer {token}"}))
    return out


@dataclass
class Pos:
    """An integration and a way to post signed events as it."""

    client: TestClient
    key_id: str
    secret: str

    def headers(
        self, raw: bytes, *, timestamp: int | None = None, secret: str | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(8)
        return {
            "Content-Type": "application/json",
            "X-Api-Key": self.key_id,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": integrations.sign(secret or self.secret, ts, nonce, raw),
        }

    async def post(self, body: dict[str, Any], **options: Any) -> Any:
        raw = json.dumps(body).encode()
        return await self.client.post("/api/v1/integrations/events", data=raw, headers=self.headers(raw, **options))


async def pos(client: TestClient, name: str = "pos") -> Pos:
    row, secret = await integrations.create(name, client.server.app[SETTINGS].secret_key, Actor.system())
    return Pos(client, row.key_id, secret)


def purchase(external_id: str, customer: Shopper, amount: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "purchase", "external_id": external_id, "customer_id": customer.id, "order_ref": f"order-{external_id}",
        "amount": amount, "occurred_at": datetime.now(UTC).isoformat(), **extra,
    }  # fmt: skip


def visit(external_id: str, customer: Shopper, **extra: Any) -> dict[str, Any]:
    return {
        "type": "visit", "external_id": external_id, "customer_id": customer.id,
        "occurred_at": datetime.now(UTC).isoformat(), **extra,
    }  # fmt: skip


def refund(external_id: str, customer: Shopper, refund_of: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "refund", "external_id": external_id, "customer_id": customer.id, "refund_of": refund_of,
        "occurred_at": datetime.now(UTC).isoformat(), **extra,
    }  # fmt: skip


async def drain_claims(client: TestClient) -> None:
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
