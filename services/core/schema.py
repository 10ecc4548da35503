"""Base classes for request and response schemas.

Bodies are strict (no type coercion, unknown fields refused); query strings arrive as
text, so query models coerce ("10" -> 10) but still refuse unknown parameters.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

#: A database id: positive and within a signed 64-bit column (larger is a 422, not an
#: overflow in the driver).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]

#: The days a date filter may name. Outside these is a typing mistake, not a range anyone
#: has data for; bounding them at the edge keeps day arithmetic ("the day after date_to")
#: from overflowing Python's date range (9999-12-31 + 1 day) deep inside a query, and
#: keeps four-digit years, which SQLite's text-ordered timestamps need.
EARLIEST_DAY = dt.date(2000, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)

#: A UTC day in a query (YYYY-MM-DD) within [EARLIEST_DAY, LATEST_DAY]; anything else is
#: a 422 naming the parameter. Every date filter uses this type, so none can overflow.
Day = Annotated[dt.date, Field(ge=EARLIEST_DAY, le=LATEST_DAY)]


#: Bidirectional controls: they reorder how the text around them is shown ("\u202eevI"
#: reads "Ive"), so a name holding one may look like another.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Invisible format characters a name may hold: the joiners that emoji sequences and
#: Persian or Indic spelling need. Every other format character (zero-width space, soft
#: hyphen, word joiner, BOM ...) is refused.
_JOINERS = frozenset("\u200c\u200d")
#: Letters and symbols that draw nothing (Hangul fillers, the blank braille pattern).
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
#: Categories that draw nothing by themselves: controls, format, separators, marks.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})


def _display_name(value: str) -> str:
    """NFC, trimmed; refused if it could show as something else or as nothing."""
    value = unicodedata.normalize("NFC", value).strip()
    for char in value:
        if char in _BIDI_CONTROLS:
            raise ValueError("bidirectional control characters are not allowed")
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or (category == "Cf" and char not in _JOINERS):
            raise ValueError("control and invisible format characters are not allowed")
    if all(char in _BLANKS or unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in value):
        raise ValueError("must have a visible character")
    return value


#: A name people read (a nickname shown to staff): stored NFC-normalised and trimmed;
#: bidi controls, control and format characters (but the joiners) and names with
#: nothing visible are a 422 naming the field. Length limits go on the field, checked
#: before normalising.
DisplayName = Annotated[str, AfterValidator(_display_name)]


def find_nul(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL character, or None.

    PostgreSQL cannot store NUL in text and SQLite stores it silently: refuse it at the
    edge, for every field of every body, in one place.
    """
    if isinstance(value, str):
        return path or "(value)" if "\x00" in value else None
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return f"{path}.{key}".lstrip(".")
            found = find_nul(item, f"{path}.{key}".lstrip("."))
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}.{index}".lstrip("."))
            if found:
                return found
    return None


class Body(BaseModel):
    """A JSON request body."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """A query string."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """A response body."""

    model_config = ConfigDict(from_attributes=True)


class Part(Out):
    """The base of ``part_of``'s models. Their fields are chosen at run time, out of a
    type checker's sight, so to it the constructor takes any keywords; pydantic still
    validates them as the fields declare."""

    if TYPE_CHECKING:

        def __init__(self, **data: Any) -> None: ...


def part_of(model: type[Out], name: str, fields: tuple[str, ...]) -> type[Part]:
    """A response model with some of ``model``'s fields, declared once there: for code
    that serializes a shared part of many answers once and writes the rest itself."""
    chosen: dict[str, Any] = {
        field: (model.model_fields[field].annotation, model.model_fields[field]) for field in fields
    }
    return create_model(name, __base__=Part, **chosen)


class ErrorBody(Out):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(Out):
    """The one error shape every route answers with."""

    error: ErrorBody
