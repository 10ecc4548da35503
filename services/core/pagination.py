"""Opaque cursors for keyset pagination (newest first, by id)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from services.core import errors

M = TypeVar("M", bound=Model)

MAX_LIMIT = 100


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id to continue before, or None for the first page; a forged cursor is a 422."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["before"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, int) or value < 1:
        raise errors.ValidationFailed(
            "query cursor: not a cursor this server issued",
            details={"errors": [{"field": "cursor", "message": "invalid cursor", "type": "invalid_cursor"}]},
        )
    return value


async def newest_first(queryset: QuerySet[M], cursor: str | None, limit: int) -> tuple[list[M], str | None]:
    """One page of ``queryset`` ordered by descending id, and the cursor of the next page."""
    before = decode_cursor(cursor)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    found = await queryset.order_by("-id").limit(limit + 1)
    page = found[:limit]
    return page, (encode_cursor(page[-1].pk) if len(found) > limit else None)
