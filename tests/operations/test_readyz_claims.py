"""``/readyz`` is not ready while grabs wait in Redis longer than
``READY_CLAIMS_MAX_AGE`` (no claims worker writes them), and ready again once written."""

from __future__ import annotations

import asyncio

from server.keys import REDIS
from services.stock import ClaimsWorker
from tests.helpers import error_of
from tests.stock.fixtures import customers, live_coupon


async def test_a_stuck_claims_backlog_makes_readyz_fail(client_with) -> None:
    client = await client_with(ready_claims_max_age=1.0)  # the app runs no workers
    coupon = await live_coupon(client, stock=3)
    (alice,) = await customers(client, 1)
    assert (await client.post(coupon.grab_path, headers=alice)).status == 201
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["claims_backlog_age_seconds"] < 1.0

    await asyncio.sleep(1.3)
    resp = await client.get("/readyz")
    assert resp.status == 503
    error = await error_of(resp)
    assert error["code"] == "not_ready" and "claims" in error["message"]
    assert error["details"]["checks"] == {"database": "ok", "redis": "ok", "claims": "failed"}
    assert error["details"]["claims_backlog_age_seconds"] >= 1.0

    assert await ClaimsWorker(client.app[REDIS]).drain() == 1
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["claims_backlog_age_seconds"] == 0.0
