"""Base classes for request and response schemas.

Bodies are strict (no type coercion, unknown fields refused); query strings arrive as
text, so query models coerce ("10" -> 10) but still refuse unknown parameters.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

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


def part_of(model: type[Out], name: str, fields: tuple[str, ...]) -> type[Out]:
    """A response model with some of ``model``'s fields, declared once there: for code
    that serializes a shared part of many answers once and writes the rest itself."""
    chosen = {field: (model.model_fields[field].annotation, model.model_fields[field]) for field in fields}
    return create_model(name, __base__=Out, **chosen)  # type: ignore[call-overload,no-any-return]


class ErrorBody(Out):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(Out):
    """The one error shape every route answers with."""

    error: ErrorBody
