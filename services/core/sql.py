"""A small toolkit for hand-written SQL that runs on SQLite and PostgreSQL: the dialect
of a connection and numbered placeholders (``?1`` on SQLite, ``$1`` on PostgreSQL), so
values always travel as parameters, never inside SQL text.

Used where the ORM's per-statement cost matters (audience rules over a million
customers, the redemption at the till) or cannot express the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tortoise.backends.base.client import BaseDBAsyncClient

Dialect = Literal["sqlite", "postgres"]


def dialect_of(connection: BaseDBAsyncClient) -> Dialect:
    name = connection.capabilities.dialect
    if name == "sqlite":
        return "sqlite"
    if name == "postgres":
        return "postgres"
    raise RuntimeError(f"hand-written SQL supports sqlite and postgres, not {name!r}")


class Params:
    """Collects query parameters and hands out the dialect's numbered placeholder for each.

    Numbered placeholders (``?N``/``$N``) let one value be referenced twice and keep both
    dialects on the same code path.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.dialect == "postgres" else f"?{len(self.values)}"

    def one_of(self, column: str, values: Sequence[Any]) -> str:
        """``column`` equals one of ``values`` (non-empty)."""
        if len(values) == 1:
            return f"{column} = {self(values[0])}"
        if self.dialect == "postgres":
            # One array parameter: the statement text (and its cached plan) does not
            # depend on how many values there are.
            return f"{column} = ANY({self(list(values))})"
        return f"{column} IN ({', '.join(self(v) for v in values)})"


def utc_day(dialect: Dialect, column: str) -> str:
    """The UTC day of a timestamp column as 'YYYY-MM-DD' text."""
    if dialect == "postgres":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    # SQLite keeps timestamps as ISO 8601 text in UTC: the day is its first ten characters.
    return f"substr({column}, 1, 10)"


def utc_last_day(dialect: Dialect, starts: str, ends: str) -> str:
    """The UTC day of the last moment of the half-open interval [starts, ends) as
    'YYYY-MM-DD' text: the day before ``ends`` when it is exactly midnight, and never
    before the day of ``starts`` (an empty interval's last moment is its start)."""
    if dialect == "postgres":
        return f"to_char(GREATEST({starts}, {ends} - interval '1 microsecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    # Midnight in SQLite's text: 00:00:00 then no fraction, or one of zeros (after the
    # seconds comes "+00:00", "" or ".ffffff": the integer prefix of the next six
    # characters is 0 exactly then).
    midnight = f"substr({ends}, 12, 8) = '00:00:00' AND CAST(substr({ends}, 21, 6) AS INTEGER) = 0"
    return (
        f"CASE WHEN {ends} <= {starts} THEN substr({starts}, 1, 10)"
        f" WHEN {midnight} THEN date(substr({ends}, 1, 10), '-1 day') ELSE substr({ends}, 1, 10) END"
    )


def json_array_has(p: Params, column: str, value: str) -> str:
    """The JSON array ``column`` (jsonb on PostgreSQL) has the string ``value`` as an element."""
    if p.dialect == "postgres":
        return f"{column} ? {p(value)}"
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {p(value)})"
