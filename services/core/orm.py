"""Typed helpers where tortoise-orm's own annotations are wrong."""

from __future__ import annotations

from typing import Any, cast

from tortoise.queryset import QuerySet


async def column(query: QuerySet[Any], field: str) -> list[Any]:
    """The ``field`` of every row ``query`` selects, as a flat list (``values_list(field, flat=True)``).

    tortoise annotates ``values_list`` as returning tuples whatever ``flat`` says; with
    ``flat=True`` and one field the rows are the bare values, hence the cast.
    """
    return cast("list[Any]", await query.values_list(field, flat=True))
