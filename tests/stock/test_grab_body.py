"""The grab's 201 body built from cached parts is byte for byte GrabOut's JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from handlers.customer import grab_body as module
from handlers.customer.grab_body import grab_body
from handlers.customer.voucher_out import GrabOut, voucher_of
from server.routing import json_body
from services.core import random_token
from services.stock import Claim, CouponInfo

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 22, 15, 0, 0, 123000, tzinfo=UTC)

RELATIVE = CouponInfo(
    template_id=7, campaign_id=3, campaign_status="active", visibility="public", targeted=False, kind="cash",
    title={"en": "Ten off", "zh": "减十元"}, face_value=1000, percent_off=None, min_spend=0, item_name=None,
    per_user_limit=1, opens_at=NOW, closes_at=NOW + timedelta(days=1), validity_kind="relative", valid_from=None,
    valid_until=None, valid_days=7, exclusive_with=frozenset(),
)  # fmt: skip
FIXED = replace(
    RELATIVE, kind="percent", percent_off=15, min_spend=5000, item_name='A "quoted" \\ item\n\u2028 é',
    title={"en": 'He said "hi"\t<b>', "zh": "\x01控制"}, validity_kind="fixed", valid_days=None,
    valid_from=datetime(2026, 12, 1, tzinfo=SHANGHAI),
    valid_until=datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)  # fmt: skip

CLAIMS = [
    Claim(random_token(20), random_token(16), NOW, replayed=False),
    Claim(random_token(20), random_token(16), datetime(2026, 11, 22, 15, 0, tzinfo=UTC), replayed=True),
    Claim('not/alnum "id"', "é-code", NOW.astimezone(SHANGHAI), replayed=True),  # escaped as JSON
]


@pytest.mark.parametrize("info", [RELATIVE, FIXED], ids=["relative", "fixed"])
@pytest.mark.parametrize("claim", CLAIMS, ids=["fresh", "whole-second", "odd-text"])
def test_the_body_is_grabouts_json(info: CouponInfo, claim: Claim) -> None:
    expected = json_body(GrabOut(voucher=voucher_of(info, claim)))
    assert grab_body(info, claim) == expected
    assert grab_body(info, claim) == expected  # from the cached part now
    assert json.loads(expected)["voucher"]["id"] == claim.claim_id


def test_a_reloaded_coupon_gets_its_own_part() -> None:
    claim = CLAIMS[0]
    grab_body(RELATIVE, claim)
    # The cache reloads a coupon as a new CouponInfo: changed terms show at once.
    reloaded = replace(RELATIVE, face_value=2000, title={"en": "Twenty off"})
    body = json.loads(grab_body(reloaded, claim))
    assert (body["voucher"]["face_value"], body["voucher"]["title"]) == (2000, {"en": "Twenty off"})
    assert json.loads(grab_body(RELATIVE, claim))["voucher"]["face_value"] == 1000


def test_the_parts_kept_are_bounded() -> None:
    infos = [replace(RELATIVE, template_id=i) for i in range(1, module._MAX_PARTS * 2)]
    for info in infos:
        assert json.loads(grab_body(info, CLAIMS[0]))["voucher"]["coupon_id"] == info.template_id
        assert len(module._PARTS) <= module._MAX_PARTS
