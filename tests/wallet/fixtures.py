"""Stores, staff logged in over HTTP, and vouchers in customers' wallets, for the wallet
and redemption tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from models.stores import Store
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from services.accounts import operators as accounts
from services.stock import ClaimsWorker
from services.wallet import qr
from tests.helpers import bearer
from tests.stock.fixtures import LiveCoupon, customers, live_coupon

REDEEM = "/api/v1/staff/redemptions"
PREVIEW = "/api/v1/staff/redemptions/preview"


async def store(code: str = "SH001", name: str = "Jing'an flagship") -> Store:
    return await accounts.create_store(code, name, "Shanghai", 31.23, 121.47)


async def staff_login(client: TestClient, store_id: int, username: str, role: str = "clerk") -> dict[str, str]:
    """A staff account made by the real service, logged in over HTTP: its Authorization header.
    (Use ``cheap_password_hashing`` in tests that make several.)"""
    password = f"pw-{username}-0123456789"
    await accounts.create_staff(username, password, username.title(), role, store_id)
    resp = await client.post("/api/v1/staff/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return bearer((await resp.json())["access_token"])


@dataclass
class Held:
    """A voucher in a customer's wallet: its public id (claim id) and the customer's header."""

    claim_id: str
    auth: dict[str, str]

    async def row(self) -> Voucher:
        return await Voucher.get(claim_id=self.claim_id)


async def grab(client: TestClient, coupon: LiveCoupon, auths: list[dict[str, str]], persist: bool = True) -> list[Held]:
    """Each customer grabs one voucher through the API; ``persist`` drains the claims
    worker so they are in the database."""
    resps = await asyncio.gather(*(client.post(coupon.grab_path, headers=a) for a in auths))
    held = []
    for auth, resp in zip(auths, resps, strict=True):
        assert resp.status == 201, await resp.text()
        held.append(Held((await resp.json())["voucher"]["id"], auth))
    if persist:
        await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    return held


async def vouchers(client: TestClient, count: int = 1, prefix: str = "o_w", **coupon: Any) -> list[Held]:
    """``count`` customers holding one voucher each of a fresh live coupon."""
    live = await live_coupon(client, stock=max(count, 1), **coupon)
    return await grab(client, live, await customers(client, count, prefix))


async def qr_payload(client: TestClient, held: Held) -> str:
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/qr", headers=held.auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["payload"]


def keyring(client: TestClient) -> qr.Keyring:
    settings = client.server.app[SETTINGS]
    return qr.keyring_for(settings.qr_keys, settings.qr_retired)
