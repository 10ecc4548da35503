"""The campaign builder's `bargain` block (docs/forms.md): required for bargain and
assist campaigns, refused for the others, its rules checked with a documented 422."""

from __future__ import annotations

from typing import Any

import pytest

from models.campaigns import Campaign
from tests.campaigns.fixtures import campaign_body
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin

BASE = "/api/v1/admin/campaigns"
RULES: dict[str, Any] = {"start_price": 9900, "floor_price": 100, "cut_min": 50, "cut_max": 500,
                         "helpers_needed": 10, "help_limit": 3, "hours": 48}  # fmt: skip


async def _operator(client, monkeypatch) -> dict[str, str]:
    cheap_password_hashing(monkeypatch)
    return bearer((await logged_in_admin(client, "operator", "op"))["access_token"])


PACKET: dict[str, Any] = {"initial_value": 100, "cap": 1000, "min_increment": 10, "helpers_needed": 20}


@pytest.mark.parametrize(
    "kind, block, rules", [("bargain", "bargain", RULES), ("assist", "bargain", {"helpers_needed": 5}),
                           ("red_packet", "red_packet", PACKET),
                           ("bargain", "bargain", {**RULES, "reward": "cut_voucher"}),
                           ("red_packet", "red_packet", {**PACKET, "claim_as": "voucher"})],
)  # fmt: skip
async def test_a_bargain_block_is_kept_and_answered_back(client, monkeypatch, kind, block, rules):
    auth = await _operator(client, monkeypatch)
    resp = await client.post(BASE, json=campaign_body(type=kind, **{block: rules}), headers=auth)
    assert resp.status == 201, await resp.text()
    answered = (await resp.json())[block]
    assert {k: answered[k] for k in rules} == rules
    assert getattr(await Campaign.get(id=(await resp.json())["id"]), block) == answered


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "bargain"},
        {"type": "assist"},
        {"type": "offer", "bargain": RULES},
        {"type": "bargain", "bargain": {**RULES, "floor_price": 9900}},
        {"type": "bargain", "bargain": {**RULES, "cut_min": 600}},
        {"type": "bargain", "bargain": {**RULES, "helpers_needed": 9801}},
        {"type": "bargain", "bargain": {**RULES, "help_limit": 0}},
        {"type": "bargain", "bargain": {**RULES, "surprise": 1}},
        {"type": "assist", "bargain": {"helpers_needed": None}},
        {"type": "red_packet"},
        {"type": "red_packet", "bargain": RULES},
        {"type": "bargain", "bargain": RULES, "red_packet": PACKET},
        {"type": "red_packet", "red_packet": {**PACKET, "cap": 299}},
        {"type": "red_packet", "red_packet": {**PACKET, "helpers_needed": 0}},
        # A voucher reward is one of the campaign's single coupon; an assist has no price to cut.
        {"type": "bargain", "bargain": {**RULES, "reward": "cut_voucher"}, "coupons": []},
        {"type": "assist", "bargain": {"helpers_needed": 5, "reward": "cut_voucher"}},
        {"type": "bargain", "bargain": {**RULES, "reward": "item"}},
        {"type": "red_packet", "red_packet": {**PACKET, "claim_as": "voucher"}, "coupons": []},
        {"type": "red_packet", "red_packet": {**PACKET, "claim_as": "cash"}},
    ],
)
async def test_a_bargain_block_breaking_the_rules_is_refused(client, monkeypatch, overrides):
    auth = await _operator(client, monkeypatch)
    resp = await client.post(BASE, json=campaign_body(**overrides), headers=auth)
    assert resp.status == 422
    assert (await error_of(resp))["code"] == "validation_failed"
    assert not await Campaign.exists()
