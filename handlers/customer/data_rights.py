"""A customer's data rights: export everything held about me, close my account."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from handlers.common import json_export
from handlers.common.actors import actor_of
from server.access import CUSTOMER
from server.keys import ERASED, REDIS, SETTINGS
from server.routing import RouteTable, principal_of
from services import privacy
from services.core import Out

routes = RouteTable()


class ExportOut(Out):
    """The document's shape (the answer is streamed as one JSON attachment)."""

    format: str
    version: int
    customer_id: int
    generated_at: datetime
    #: Table name -> the rows naming the customer, every column but secrets.
    tables: dict[str, list[dict[str, object]]]
    #: Last member: a document without it was cut short.
    complete: bool


class ErasureOut(Out):
    customer_id: int
    erased_at: datetime
    vouchers_voided: list[int]
    grants_refused: int
    rows_deleted: dict[str, int]
    audit_entries_redacted: int
    redis_keys_deleted: int

    @classmethod
    def of(cls, report: privacy.ErasureReport) -> ErasureOut:
        return cls(
            customer_id=report.customer_id, erased_at=report.erased_at, vouchers_voided=report.vouchers_voided,
            grants_refused=report.grants_refused, rows_deleted=report.rows_deleted,
            audit_entries_redacted=report.audit_entries_redacted, redis_keys_deleted=report.redis_keys_deleted,
        )  # fmt: skip


@routes.add(
    "GET", "/api/v1/me/data-export", access=CUSTOMER, tags=("me",), response=ExportOut,
    summary="Everything held about me, as one JSON document (docs/data-rights.md)",
)  # fmt: skip
async def export_me(request: web.Request) -> web.StreamResponse:
    customer_id = principal_of(request).id
    chunks = await privacy.open_export(customer_id)
    return await json_export.stream(request, f"customer-{customer_id}.json", chunks)


@routes.add(
    "DELETE", "/api/v1/me", access=CUSTOMER, tags=("me",), response=ErasureOut,
    summary="Close my account: erase my personal data (what is kept and why: docs/data-rights.md)",
)  # fmt: skip
async def close_account(request: web.Request) -> ErasureOut:
    app = request.app
    report = await privacy.erase_customer(
        app[REDIS], principal_of(request).id, actor=actor_of(request), reason="closed by the customer",
        token_ttl_seconds=app[SETTINGS].access_token_ttl, erased=app[ERASED],
    )  # fmt: skip
    return ErasureOut.of(report)
