"""Field rules of subscribe-message template data (the emulator's 47003 checks).

The emulator does not know the templates, so the keyword type is taken from
the key's name (``thing1`` is a ``thing``) and unknown types are accepted.
"""

from __future__ import annotations

import re
from datetime import datetime

_KEY = re.compile(r"^([a-z_]+?)([0-9]+)$")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")
_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
    "%H:%M",
)


def _is_datetime(value: str) -> bool:
    for fmt in _TIME_FORMATS:
        try:
            datetime.strptime(value, fmt)
        except ValueError:
            continue
        return True
    return False


def _check(kind: str, value: str) -> bool:
    if not value:
        return False
    match kind:
        case "thing":
            return len(value) <= 20
        case "number":
            return len(value) <= 32 and re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) is not None
        case "letter":
            return len(value) <= 32 and value.isascii() and value.isalpha()
        case "symbol":
            return len(value) <= 5 and not any(ch.isalnum() for ch in value)
        case "character_string":
            return len(value) <= 32 and re.fullmatch(r"[\x21-\x7e]+", value) is not None
        case "time" | "date":
            return _is_datetime(value)
        case "amount":
            return len(value) <= 11 and re.fullmatch(r"[¥$€£]?[0-9]+(\.[0-9]{1,2})?元?", value) is not None
        case "phone_number":
            return len(value) <= 17 and re.fullmatch(r"[0-9+\-() ]+", value) is not None
        case "car_number":
            return len(value) <= 8
        case "name":
            return len(value) <= (10 if _CJK.match(value) else 20)
        case "phrase":
            return len(value) <= 5 and _CJK.match(value) is not None
        case _:
            return True


def template_data_error(data: object) -> str | None:
    """Return why ``data`` is invalid (the 47003 detail), or ``None`` when it is valid."""
    if not isinstance(data, dict) or not data:
        return "data must be a non-empty object"
    for key, field in data.items():
        match = _KEY.match(key) if isinstance(key, str) else None
        if match is None:
            return f"data.{key} is not a keyword name"
        value = field.get("value") if isinstance(field, dict) else None
        if not isinstance(value, str):
            return f"data.{key}.value must be a string"
        if not _check(match.group(1), value):
            return f"data.{key}.value invalid"
    return None
