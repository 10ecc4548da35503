"""What the feed's HTTP answers show besides the scores: the opaque cursor of a feed
page, and a card's title and summary in the language the viewer asked for.
"""

from __future__ import annotations

import base64
import binascii
import json

from services.campaigns import CampaignSnapshot
from services.core import errors, pick_language


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["o"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, int) or not 0 <= value <= 100_000:
        raise errors.ValidationFailed(
            "query cursor: not a cursor this server issued",
            details={"errors": [{"field": "cursor", "message": "invalid cursor", "type": "invalid_cursor"}]},
        )
    return value


def texts_of(snap: CampaignSnapshot, accept_language: str | None) -> tuple[str, str, str]:
    """(language used, title, summary) for an ``Accept-Language`` header."""
    lang = pick_language(accept_language, list(snap.content), snap.default_language)
    body = snap.content.get(lang, {})
    return lang, body.get("title", ""), body.get("summary", "")
