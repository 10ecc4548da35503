"""Rules at the till beyond the voucher's own: the campaign's redemption period
(``redeem_until``), several vouchers on one order, and codes typed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import Campaign
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
