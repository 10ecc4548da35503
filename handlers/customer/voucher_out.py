"""A newly issued voucher, as the grab and the points exchange answer it."""

from __future__ import annotations

from datetime import datetime

from services.core import CouponFace, Out, face_of
from services.stock import Claim, CouponInfo


class VoucherOut(Out, CouponFace):
    id: str
    code: str
    coupon_id: int
    campaign_id: int
    status: str
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime


class GrabOut(Out):
    voucher: VoucherOut


def voucher_of(info: CouponInfo, claim: Claim) -> VoucherOut:
    valid_from, valid_until = info.validity(claim.grabbed_at)
    return VoucherOut(
        id=claim.claim_id, code=claim.code, coupon_id=info.template_id, campaign_id=info.campaign_id,
        status="available", **face_of(info), valid_from=valid_from, valid_until=valid_until,
        issued_at=claim.grabbed_at,
    )  # fmt: skip
