"""Guessing barcode numbers at the till is throttled: scans that find no voucher are
limited per staff member and per store (429 rate_limited with Retry-After), found codes
never count, and a burst is audited."""

from __future__ import annotations

import asyncio
import random

import pytest

from models.audit import AuditEntry
from services.wallet import STAFF_FAILURES, STAFF_IN_FLIGHT, STORE_FAILURES, WINDOW_SECONDS
from tests.helpers import cheap_password_hashing, error_of
from tests.wallet.fixtures import PREVIEW, REDEEM, qr_payload, staff_login, store, vouchers


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def _guess() -> str:
    return "".join(random.choice("0123456789") for _ in range(16))


async def test_a_clerk_guessing_numbers_is_stopped_and_audited(client) -> None:
    shop = await store()
    clerk, colleague = await staff_login(client, shop.id, "clara"), await staff_login(client, shop.id, "carl")
    [held] = await vouchers(client)
    # 300 guesses at once, as a script would: a few dozen get a verdict, not 300.
    answers = await asyncio.gather(
        *(client.post(PREVIEW if i % 2 else REDEEM, json={"payload": _guess()}, headers=clerk) for i in range(300))
    )
    statuses = [r.status for r in answers]
    assert set(statuses) <= {404, 422, 429}, set(statuses)
    assert STAFF_FAILURES <= sum(s != 429 for s in statuses) <= STAFF_FAILURES + STAFF_IN_FLIGHT, sorted(statuses)
    for resp in answers:
        if resp.status == 429:
            assert (await error_of(resp))["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    # Then one at a time: refused until the window ends.
    limited = await client.post(PREVIEW, json={"payload": _guess()}, headers=clerk)
    error = await error_of(limited)
    assert limited.status == 429 and error["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) == error["details"]["retry_after"] <= WINDOW_SECONDS
    # Even a real code waits out the window for this clerk...
    payload = await qr_payload(client, held)
    assert (await client.post(PREVIEW, json={"payload": payload}, headers=clerk)).status == 429
    # ...while a colleague at the same store carries on.
    resp = await client.post(REDEEM, json={"payload": payload}, headers=colleague)
    assert resp.status == 201, await resp.text()
    [burst] = await AuditEntry.filter(action="redemption.scan_burst")
    assert burst.entity_type == "store" and burst.entity_id == shop.id
    assert burst.after["failures"] == STAFF_FAILURES and burst.after["scope"] == "staff"


async def test_found_codes_never_count_and_the_store_has_its_own_limit(client) -> None:
    shop = await store()
    [held] = await vouchers(client)
    payload = await qr_payload(client, held)
    clerk = await staff_login(client, shop.id, "clara")
    assert (await client.post(REDEEM, json={"payload": payload}, headers=clerk)).status == 201
    # A used voucher is found, whatever the verdict: scanning it again is never throttled.
    for _ in range(STAFF_FAILURES + 5):
        resp = await client.post(PREVIEW, json={"payload": payload}, headers=clerk)
        assert resp.status == 200, await resp.text()
        assert (await client.post(REDEEM, json={"payload": payload}, headers=clerk)).status == 409
    # Several clerks each under their own limit add up to the store's.
    clerks = [await staff_login(client, shop.id, f"clerk{i}") for i in range(STORE_FAILURES // STAFF_FAILURES + 1)]
    for auth in clerks[:-1]:
        for _ in range(STAFF_FAILURES):
            assert (await client.post(PREVIEW, json={"payload": _guess()}, headers=auth)).status in (404, 422)
    resp = await client.post(PREVIEW, json={"payload": _guess()}, headers=clerks[-1])
    assert resp.status == 429 and "store" in (await error_of(resp))["message"]
    # Another store is not affected.
    other = await staff_login(client, (await store("SH002", "Other")).id, "olaf")
    assert (await client.post(PREVIEW, json={"payload": _guess()}, headers=other)).status in (404, 422)
