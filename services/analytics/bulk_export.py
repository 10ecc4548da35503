"""A newline-delimited JSON export of raw rows for BI tools (issue 18), streamed with
bounded memory.

Each kind is read by keyset pagination (``id > last ORDER BY id LIMIT batch``): one batch
of rows in memory at a time, whatever the export's size, and no OFFSET that slows down
as it goes. Each line is one JSON object; the last line is ``{"end": true, "kind": ...,
"rows": N}``, so a consumer can tell a complete file from one cut short (the HTTP edge
also closes the connection without end-of-body on a failure midway). Rows name
customers by id only: no openid, name or phone leaves through here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, get_args

from tortoise.models import Model

from models.attribution import Attribution
from models.journey import IntegrationEvent
from models.participations import Participation
from models.redemptions import Redemption
from services.analytics.funnel import DateRange

ExportKind = Literal["purchases", "redemptions", "attributions", "participations"]
EXPORT_KINDS: tuple[str, ...] = get_args(ExportKind)
#: Rows read per query.
BATCH = 1000


_SOURCES: dict[str, tuple[type[Model], str, tuple[str, ...], dict[str, Any]]] = {
    # kind: (model, time column, columns, fixed filters)
    "purchases": (
        IntegrationEvent, "occurred_at",
        ("id", "integration_id", "external_id", "status", "customer_id", "occurred_at", "amount", "order_ref",
         "store_id", "categories", "created_at"),
        {"type": "purchase"},
    ),
    "redemptions": (
        Redemption, "created_at",
        ("id", "voucher_id", "store_id", "staff_id", "customer_id", "campaign_id", "template_id", "face_value",
         "order_ref", "order_amount", "created_at", "reversed_at"),
        {},
    ),
    "attributions": (
        Attribution, "occurred_at",
        ("id", "order_key", "event_id", "campaign_id", "customer_id", "store_id", "amount", "rule", "redemption_id",
         "participation_id", "occurred_at", "created_at"),
        {},
    ),
    "participations": (
        Participation, "joined_at",
        ("id", "campaign_id", "customer_id", "status", "progress", "joined_at", "completed_at"),
        {},
    ),
}  # fmt: skip


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def export_lines(
    kind: ExportKind, r: DateRange, *, campaign_id: int | None = None, batch: int = BATCH
) -> AsyncIterator[bytes]:
    """The export's lines, one chunk per batch, then the end line. ``campaign_id``
    narrows the kinds that carry one (purchases carry none: it is ignored for them)."""
    model, at, columns, fixed = _SOURCES[kind]
    filters: dict[str, Any] = {**fixed, f"{at}__gte": r.start, f"{at}__lt": r.end}
    if campaign_id is not None and "campaign_id" in columns:
        filters["campaign_id"] = campaign_id
    last = 0
    count = 0
    while True:
        rows = await model.filter(id__gt=last, **filters).order_by("id").limit(batch).values(*columns)
        if not rows:
            break
        last = int(rows[-1]["id"])
        count += len(rows)
        yield b"".join(
            json.dumps({"kind": kind, **{k: _plain(v) for k, v in row.items()}}, ensure_ascii=False).encode() + b"\n"
            for row in rows
        )
        if len(rows) < batch:
            break
    yield json.dumps({"end": True, "kind": kind, "rows": count}).encode() + b"\n"
