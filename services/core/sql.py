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
