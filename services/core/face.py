"""The coupon's face: what a customer is shown of a coupon (its kind, title, value, spend
threshold and item), declared once here and inherited by every cache and answer that
carries it (issue 13: it was declared in nine places besides the table).

It is a frozen stdlib dataclass so the in-process caches (CouponInfo, CouponSnapshot,
VoucherView) stay plain immutable values; pydantic response models inherit it too
(``class VoucherOut(Out, CouponFace)``): pydantic takes a dataclass base's fields as its
own, and BaseModel's methods come first in the MRO, so the model behaves as any other.
A model's inherited fields come before its own, so the face leads its JSON. The
frozenness is the dataclass's ``__setattr__``, which BaseModel's shadows: the models stay
ordinary pydantic models.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, kw_only=True)
class CouponFace:
    kind: str
    title: dict[str, str]
    #: fixed/threshold: the amount off; percent: the cap on the discount; free_item: the
    #: item's value. In fen. A voucher's own (fixed when issued) where one is shown.
    face_value: int
    percent_off: int | None
    min_spend: int
    item_name: str | None


#: The face's field names, in declaration order.
FACE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CouponFace))


def face_of(source: Any, **changes: Any) -> dict[str, Any]:
    """The face's values read off ``source`` (a CouponTemplate, a cache entry: anything
    with those attributes), with ``changes`` given instead of some (``source`` need not
    have those), as keyword arguments for a class inheriting CouponFace."""
    if not changes.keys() <= set(FACE_FIELDS):
        raise TypeError(f"not fields of the coupon's face: {sorted(changes.keys() - set(FACE_FIELDS))}")
    return {name: changes[name] if name in changes else getattr(source, name) for name in FACE_FIELDS}
