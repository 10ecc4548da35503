"""CSV cells and rows for streamed exports, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import datetime as dt
import io


def cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading '."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def rows(values: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(values)
    return out.getvalue().encode()
