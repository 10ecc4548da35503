"""Redis replies as text: the clients run without ``decode_responses`` (stream entries and
scripts answer bytes), so every reader turns a reply into ``str`` the same way."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """A reply (bytes, str or number) as a string."""
    return value.decode() if isinstance(value, bytes) else str(value)
