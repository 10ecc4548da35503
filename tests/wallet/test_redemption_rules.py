"""Rules at the till beyond the voucher's own: the campaign's redemption period
(``redeem_until``), several vouchers on one order, and codes typed by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import Campaign, ExclusivityLink
from models.redemptions import Redemption
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


async def test_a_basket_carries_several_vouchers_unless_their_campaigns_exclude_each_other(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    first, second = await vouchers(client, 2, prefix="o_basket_a")
    [third] = await vouchers(client, 1, prefix="o_basket_b")
    [fourth] = await vouchers(client, 1, prefix="o_basket_c")

    # Two vouchers of one campaign on one order: both redeemed, each its own redemption.
    payloads = [await qr_payload(client, held) for held in (first, second)]
    answers = []
    for payload in payloads:
        resp = await client.post(REDEEM, json={"payload": payload, "order_ref": "POS-9"}, headers=clerk)
        assert resp.status == 201, await resp.text()
        answers.append(await resp.json())
    assert answers[0]["id"] != answers[1]["id"] and {a["order_ref"] for a in answers} == {"POS-9"}
    # A retry of either voucher with the order is a replay of its own redemption.
    for payload, answer in zip(payloads, answers, strict=True):
        again = await client.post(REDEEM, json={"payload": payload, "order_ref": "POS-9"}, headers=clerk)
        assert again.status == 201 and again.headers.get("Idempotent-Replayed") == "true"
        assert await again.json() == answer

    # A campaign exclusive with the order's: its voucher cannot join the order...
    order_campaign = (await first.row()).campaign_id  # type: ignore[attr-defined]
    other_campaign = (await third.row()).campaign_id  # type: ignore[attr-defined]
    low, high = sorted((order_campaign, other_campaign))
    await ExclusivityLink.create(campaign_low_id=low, campaign_high_id=high, created_by=1)
    payload = await qr_payload(client, third)
    error = await _refused(await client.post(REDEEM, json={"payload": payload, "order_ref": "POS-9"}, headers=clerk),
                           409, "voucher_not_stackable")  # fmt: skip
    assert error["details"]["redemption_id"] in {a["id"] for a in answers}
    assert (await third.row()).status == "available"
    # ...but is redeemed on another order, and a campaign exclusive with no one stacks.
    resp = await client.post(REDEEM, json={"payload": payload, "order_ref": "POS-10"}, headers=clerk)
    assert resp.status == 201, await resp.text()
    resp = await client.post(REDEEM, json={"payload": await qr_payload(client, fourth), "order_ref": "POS-9"},
                             headers=clerk)  # fmt: skip
    assert resp.status == 201, await resp.text()
    assert await Redemption.filter(order_ref="POS-9").count() == 3


async def test_exclusive_vouchers_sent_at_once_on_one_order_one_is_refused(client):
    shop = await store()
    clerks = [await staff_login(client, shop.id, "clara"), await staff_login(client, shop.id, "carl")]
    for round_ in range(3):
        [a] = await vouchers(client, 1, prefix=f"o_race_a{round_}")
        [b] = await vouchers(client, 1, prefix=f"o_race_b{round_}")
        low, high = sorted(((await a.row()).campaign_id, (await b.row()).campaign_id))  # type: ignore[attr-defined]
        await ExclusivityLink.create(campaign_low_id=low, campaign_high_id=high, created_by=1)
        payloads = [await qr_payload(client, a), await qr_payload(client, b)]
        resps = await asyncio.gather(*(
            client.post(REDEEM, json={"payload": p, "order_ref": f"POS-R{round_}"}, headers=clerks[i])
            for i, p in enumerate(payloads)
        ))  # fmt: skip
        assert sorted(r.status for r in resps) == [201, 409], [await r.text() for r in resps]
        [refused] = [r for r in resps if r.status == 409]
        await _refused(refused, 409, "voucher_not_stackable")
        assert await Redemption.filter(order_ref=f"POS-R{round_}").count() == 1
