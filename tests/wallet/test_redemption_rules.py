"""Rules at the till beyond the voucher's own: the campaign's redemption period
(``redeem_until``), several vouchers on one order, and codes typed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import Campaign
from services.wallet import STAFF_FAILURES
from tests.helpers import cheap_password_hashing, error_of
from tests.wallet.fixtures import PREVIEW, REDEEM, qr_payload, staff_login, store, vouchers


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


async def _refused(resp, status: int, code: str) -> dict:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def test_no_redemption_after_the_campaigns_redeem_until(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    over, still = await vouchers(client, 2)
    campaign_id = (await over.row()).campaign_id  # type: ignore[attr-defined]
    # The cool-down ended a minute ago; the voucher itself is valid for days yet.
    ended = datetime.now(UTC) - timedelta(minutes=1)
    await Campaign.filter(id=campaign_id).update(redeem_until=ended)
    assert (await over.row()).valid_until > datetime.now(UTC) + timedelta(days=1)
    payload = await qr_payload(client, over)

    preview = await (await client.post(PREVIEW, json={"payload": payload}, headers=clerk)).json()
    assert preview["redeemable"] is False and preview["refusal"]["code"] == "redeem_period_over"
    assert abs(datetime.fromisoformat(preview["refusal"]["details"]["redeem_until"]) - ended) < timedelta(seconds=1)
    error = await _refused(await client.post(REDEEM, json={"payload": payload}, headers=clerk), 409,
                           "redeem_period_over")  # fmt: skip
    assert "redeem_until" in error["details"]
    assert (await over.row()).status == "available"

    # Until redeem_until, the same campaign's vouchers redeem as before.
    await Campaign.filter(id=campaign_id).update(redeem_until=datetime.now(UTC) + timedelta(hours=1))
    resp = await client.post(REDEEM, json={"payload": await qr_payload(client, still)}, headers=clerk)
    assert resp.status == 201, await resp.text()


def _as_typed(code: str) -> str:
    """The code as a hurried clerk types it: lower case, 1 as l, 0 as o, in groups of four."""
    typed = code.lower().replace("1", "l").replace("0", "o")
    return "-".join(typed[i : i + 4] for i in range(0, len(typed), 4))


async def test_staff_can_type_the_code_the_wallet_shows(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}", headers=held.auth)
    shown = (await resp.json())["code"]
    assert shown == (await held.row()).code

    preview = await client.post(PREVIEW, json={"payload": _as_typed(shown)}, headers=clerk)
    assert preview.status == 200, await preview.text()
    body = await preview.json()
    assert body["redeemable"] is True and body["voucher"]["id"] == held.claim_id
    resp = await client.post(REDEEM, json={"payload": shown, "order_ref": "POS-1"}, headers=clerk)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["voucher_id"] == held.claim_id
    # A retry, typed differently, is the same redemption.
    again = await client.post(REDEEM, json={"payload": f" {shown.lower()} ", "order_ref": "POS-1"}, headers=clerk)
    assert again.status == 201 and again.headers.get("Idempotent-Replayed") == "true"
    await _refused(await client.post(REDEEM, json={"payload": shown}, headers=clerk), 409, "voucher_already_used")


async def test_typed_codes_that_name_no_voucher_count_against_the_scan_limit(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    code = (await held.row()).code
    for i in range(STAFF_FAILURES):
        wrong = f"ZZZZZZZZZZZZ{i:04d}"  # the right shape, no voucher's code (one in 32^12)
        await _refused(await client.post(PREVIEW, json={"payload": wrong}, headers=clerk), 422, "qr_invalid")
    # Over the limit: even the right code waits.
    resp = await client.post(PREVIEW, json={"payload": code}, headers=clerk)
    await _refused(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0
    assert (await held.row()).status == "available"
