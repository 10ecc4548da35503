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
from services.campaigns import face_of
from services.core import part_of
from services.stock import Claim, CouponInfo

#: VoucherOut's fields in order. The grab writes id and code, then its validity and issue
#: time; the fields before id and those between code and valid_from a coupon's vouchers share.
_FIELDS = tuple(VoucherOut.model_fields)
_HEAD, _MIDDLE = _FIELDS[: _FIELDS.index("id")], _FIELDS[_FIELDS.index("code") + 1 : _FIELDS.index("valid_from")]
assert _FIELDS == (*_HEAD, "id", "code", *_MIDDLE, "valid_from", "valid_until", "issued_at"), _FIELDS
_HeadPart = part_of(VoucherOut, "_HeadPart", _HEAD)
_MiddlePart = part_of(VoucherOut, "_MiddlePart", _MIDDLE)


_DATETIME = TypeAdapter(datetime)
_TEXT = TypeAdapter(str)
#: id(info) → (info, its shared parts, its fixed validity or None). The info is held so
#: its id cannot be reused while the entry lives; the cache reloads a coupon's info every
#: few seconds, so old entries are dropped in bulk past a bound.
_PARTS: dict[int, tuple[CouponInfo, bytes, bytes, bytes | None]] = {}
_MAX_PARTS = 512


def _shared(info: CouponInfo) -> tuple[CouponInfo, bytes, bytes, bytes | None]:
    # Each part takes its own fields of these (a model ignores the others).
    values = {**face_of(info), "coupon_id": info.template_id, "campaign_id": info.campaign_id, "status": "available"}
    head = _HeadPart.__pydantic_serializer__.to_json(_HeadPart.model_validate(values))[:-1] + b","
    middle = _MiddlePart.__pydantic_serializer__.to_json(_MiddlePart.model_validate(values))[1:-1]
    fixed = None
    if info.validity_kind == "fixed":
        assert info.valid_from is not None and info.valid_until is not None
        fixed = _validity(info.valid_from, info.valid_until)
    return info, head, b"," + middle, fixed


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
    _, head, middle, validity = entry
    issued_at = _DATETIME.dump_json(claim.grabbed_at)
    if validity is None:
        valid_from, valid_until = info.validity(claim.grabbed_at)
        # A relative window opens at the grab: its first moment is serialized already.
        opens = issued_at if valid_from is claim.grabbed_at else _DATETIME.dump_json(valid_from)
        validity = b',"valid_from":' + opens + b',"valid_until":' + _DATETIME.dump_json(valid_until)
    return b"".join(
        (
            b'{"voucher":', head, b'"id":', _string(claim.claim_id), b',"code":', _string(claim.code), middle,
            validity, b',"issued_at":', issued_at, b"}}",
        )
    )  # fmt: skip
