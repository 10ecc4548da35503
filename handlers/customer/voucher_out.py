"""A newly issued voucher, as the grab and the points exchange answer it."""

from __future__ import annotations

from datetime import datetime

from services.core.schema import Out
from services.stock.coupon_cache import CouponInfo
from services.stock.gate import Claim


class VoucherOut(Out):
    id: str
    code: str
    coupon_id: int
    campaign_id: int
    status: str
    kind: str
    title: dict[str, str]
    face_value: int
    percent_off: int | None
    min_spend: int
    item_name: str | None
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime


class GrabOut(Out):
    voucher: VoucherOut


def voucher_of(info: CouponInfo, claim: Claim) -> VoucherOut:
    valid_from, valid_until = info.validity(claim.grabbed_at)
    return VoucherOut(
        id=claim.claim_id, code=claim.code, coupon_id=info.template_id, campaign_id=info.campaign_id,
        status="available", kind=info.kind, title=info.title, face_value=info.face_value,
        percent_off=info.percent_off, min_spend=info.min_spend, item_name=info.item_name, valid_from=valid_from,
        valid_until=valid_until, issued_at=claim.grabbed_at,
    )  # fmt: skip
