"""Builders for customer-service tests: admins of each role logged in over HTTP, and the
routes' paths."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from models.customers import Customer, phone_suffix_of
from tests.helpers import bearer, logged_in_admin

CUSTOMERS = "/api/v1/admin/customers"


def customer_path(customer_id: int, tail: str = "") -> str:
    return f"{CUSTOMERS}/{customer_id}{tail}"


def void_path(voucher_id: int) -> str:
    return f"/api/v1/admin/vouchers/{voucher_id}/void"


async def admin_headers(client: TestClient, role: str = "operator", username: str | None = None) -> dict[str, str]:
    """The Authorization header of a fresh admin of ``role`` (logged in over HTTP)."""
    login = await logged_in_admin(client, role, username)
    return bearer(login["access_token"])


async def customer(openid: str, **fields: Any) -> Customer:
    """A customer row; a ``phone_number`` gets its stored suffix as binding does."""
    if "phone_number" in fields:
        fields.setdefault("phone_suffix", phone_suffix_of(fields["phone_number"]))
    return await Customer.create(openid=openid, **fields)


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()
