"""Base classes for request and response schemas.

Bodies are strict (no type coercion, unknown fields refused); query strings arrive as
text, so query models coerce ("10" -> 10) but still refuse unknown parameters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A JSON request body."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """A query string."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """A response body."""

    model_config = ConfigDict(from_attributes=True)


class ErrorBody(Out):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(Out):
    """The one error shape every route answers with."""

    error: ErrorBody
