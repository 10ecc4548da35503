"""The coupon's face is declared once (services/core/face.py) and every cache and
answer carrying it has the same fields, with the same types, in its JSON schema."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import BaseModel

from handlers.admin.campaign_schemas import CouponOut
from handlers.customer.voucher_out import VoucherOut
from handlers.customer.vouchers import VoucherDetailOut, WalletVoucherOut
from handlers.staff.redemptions import PreviewVoucherOut
from services.campaigns import CouponSnapshot
from services.core import FACE_FIELDS, CouponFace, face_of
from services.stock import CouponInfo
from services.wallet import VoucherView

ANSWERS = [VoucherOut, WalletVoucherOut, VoucherDetailOut, PreviewVoucherOut, CouponOut]

#: The face as the answers declared it before it was declared once (the public contract).
FACE_SCHEMA = {
    "kind": {"type": "string"},
    "title": {"type": "object", "additionalProperties": {"type": "string"}},
    "face_value": {"type": "integer"},
    "percent_off": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "min_spend": {"type": "integer"},
    "item_name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
}


@pytest.mark.parametrize("model", ANSWERS, ids=lambda m: m.__name__)
def test_answers_carry_the_face_unchanged(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    for name, expected in FACE_SCHEMA.items():
        got = {k: v for k, v in schema["properties"][name].items() if k != "title"}
        assert got == expected, name
        assert name in schema["required"]


@pytest.mark.parametrize("cache", [CouponInfo, CouponSnapshot, VoucherView], ids=lambda c: c.__name__)
def test_caches_inherit_the_face(cache: type) -> None:
    assert issubclass(cache, CouponFace)
    assert {f.name for f in fields(cache)} >= set(FACE_FIELDS)


def test_face_of_reads_the_fields_and_takes_changes() -> None:
    face = CouponFace(kind="fixed", title={"en": "Ten off"}, face_value=1000, percent_off=None, min_spend=0,
                      item_name=None)  # fmt: skip
    assert face_of(face) == {f: getattr(face, f) for f in FACE_FIELDS}
    assert face_of(face, face_value=500)["face_value"] == 500

    class NoValue:  # what redeeming reads of a template: the voucher has its own value
        kind, percent_off, min_spend, item_name = "fixed", None, 0, None
        title: dict[str, str] = {}

    assert face_of(NoValue(), face_value=7)["face_value"] == 7
    with pytest.raises(TypeError, match="face_valu"):
        face_of(face, face_valu=1)
