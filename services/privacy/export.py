"""A customer's data export: every row of every table in ``catalog.HOLDINGS`` that names
the customer, as one JSON document, produced in bounded batches.

The document is written as a stream of chunks so its size is bounded by nothing but the
data (a customer with years of history does not sit in memory at once); each table is
read in keyset batches of ``BATCH`` rows. Its last member is ``"complete": true``: a
stream that fails midway never reaches it (and the HTTP layer closes the connection
without the end of the body), so a partial document is never mistaken for a whole one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from models.customers import Customer
from services.core import errors
from services.privacy.catalog import HOLDINGS, Holding

FORMAT = "wxcampaign.customer-export"
VERSION = 1
#: Rows read per query (and per chunk written).
BATCH = 500


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _json(value: Any) -> bytes:
    return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":")).encode()


async def _batches(holding: Holding, customer_id: int) -> AsyncIterator[list[dict[str, Any]]]:
    columns = holding.exported_columns()
    after = 0
    while True:
        rows = (
            await holding.model.filter(holding.rows_of(customer_id), id__gt=after)
            .order_by("id")
            .limit(BATCH)
            .values(*columns)
        )
        if not rows:
            return
        yield rows
        if len(rows) < BATCH:
            return
        after = int(rows[-1]["id"])


async def open_export(customer_id: int, now: datetime | None = None) -> AsyncIterator[bytes]:
    """The export of one customer as chunks of one JSON document.

    Raises ``NotFound`` before the first chunk when there is no such customer, so the
    caller can still answer an ordinary error; failures after that surface from the
    iterator (the caller must then end its answer visibly incomplete).
    """
    if not await Customer.filter(id=customer_id).exists():
        raise errors.NotFound("no such customer")
    generated = now or datetime.now(UTC)
    return _chunks(customer_id, generated)


async def _chunks(customer_id: int, generated: datetime) -> AsyncIterator[bytes]:
    head = {"format": FORMAT, "version": VERSION, "customer_id": customer_id, "generated_at": generated}
    yield _json(head)[:-1] + b',"tables":{'
    for number, holding in enumerate(HOLDINGS):
        yield (b"," if number else b"") + _json(holding.table) + b":["
        first = True
        async for rows in _batches(holding, customer_id):
            body = b",".join(_json(row) for row in rows)
            yield (b"" if first else b",") + body
            first = False
        yield b"]"
    yield b'},"complete":true}'
