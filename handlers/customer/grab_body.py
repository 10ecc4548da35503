"""The grab's 201 body as bytes, with the coupon's part serialized once per CouponInfo.

Every voucher of one coupon shares all but five values (id, code, validity, issue time),
so building a ``GrabOut`` model, validating it and serializing the coupon's title and
terms again per grab is work done twice. The bytes are exactly ``GrabOut``'s JSON
(tests/stock/test_grab_body.py compares them), which stays the route's declared schema.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter

from handlers.customer.voucher_out import VoucherOut
from services.core.schema import part_of
from services.stock.coupon_cache import CouponInfo
from services.stock.gate import Claim

#: The fields of VoucherOut a coupon's vouchers share, in VoucherOut's order.
_CouponPart = part_of(
    VoucherOut, "_CouponPart",
    ("coupon_id", "campaign_id", "status", "kind", "title", "face_value", "percent_off", "min_spend", "item_name"),
)  # fmt: skip


_DATETIME = TypeAdapter(datetime)
_TEXT = TypeAdapter(str)
#: id(info) → (info, its shared part, its fixed validity or None). The info is held so
#: its id cannot be reused while the entry lives; the cache reloads a coupon's info every
#: few seconds, so old entries are dropped in bulk past a bound.
_PARTS: dict[int, tuple[CouponInfo, bytes, bytes | None]] = {}
_MAX_PARTS = 512


def _shared(info: CouponInfo) -> tuple[CouponInfo, bytes, bytes | None]:
    part = _CouponPart(
        coupon_id=info.template_id, campaign_id=info.campaign_id, status="available", kind=info.kind,
        title=info.title, face_value=info.face_value, percent_off=info.percent_off, min_spend=info.min_spend,
        item_name=info.item_name,
    )  # fmt: skip
    shared = b"," + _CouponPart.__pydantic_serializer__.to_json(part)[1:-1]
    fixed = None
    if info.validity_kind == "fixed":
        assert info.valid_from is not None and info.valid_until is not None
        fixed = _validity(info.valid_from, info.valid_until)
    return info, shared, fixed


def _validity(valid_from: datetime, valid_until: datetime) -> bytes:
    return b',"valid_from":' + _DATETIME.dump_json(valid_from) + b',"valid_until":' + _DATETIME.dump_json(valid_until)


def _string(value: str) -> bytes:
    # Claim ids and codes are Crockford base32: nothing to escape.
    if value.isascii() and value.isalnum():
        return b'"' + value.encode() + b'"'
    return _TEXT.dump_json(value)


def grab_body(info: CouponInfo, claim: Claim) -> bytes:
    """``GrabOut(voucher=voucher_of(info, claim))`` as JSON bytes."""
    entry = _PARTS.get(id(info))
    if entry is None or entry[0] is not info:
        if len(_PARTS) >= _MAX_PARTS:
            _PARTS.clear()
        entry = _PARTS[id(info)] = _shared(info)
    _, shared, validity = entry
    issued_at = _DATETIME.dump_json(claim.grabbed_at)
    if validity is None:
        valid_from, valid_until = info.validity(claim.grabbed_at)
        # A relative window opens at the grab: its first moment is serialized already.
        opens = issued_at if valid_from is claim.grabbed_at else _DATETIME.dump_json(valid_from)
        validity = b',"valid_from":' + opens + b',"valid_until":' + _DATETIME.dump_json(valid_until)
    return b"".join(
        (
            b'{"voucher":{"id":', _string(claim.claim_id), b',"code":', _string(claim.code), shared, validity,
            b',"issued_at":', issued_at, b"}}",
        )
    )  # fmt: skip
