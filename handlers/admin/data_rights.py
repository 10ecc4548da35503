"""Data rights exercised for a customer by a superadmin: export, erase."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from handlers.common import json_export
from handlers.common.actors import actor_of
from handlers.customer.data_rights import ErasureOut, ExportOut
from server.access import admin
from server.keys import ERASED, REDIS, SETTINGS
from server.routing import RouteTable, path_int
from services import privacy
from services.core import Body, errors

routes = RouteTable()

SUPERADMIN = admin("superadmin")


class EraseIn(Body):
    reason: str = Field(min_length=1, max_length=500, description="why (recorded in the audit log)")


@routes.add(
    "GET", "/api/v1/admin/customers/{id}/export", access=SUPERADMIN, tags=("admin",), response=ExportOut,
    summary="Everything held about a customer, as one JSON document", errors=(errors.NotFound,),
)  # fmt: skip
async def export_customer(request: web.Request) -> web.StreamResponse:
    customer_id = path_int(request, "id")
    chunks = await privacy.open_export(customer_id)
    return await json_export.stream(request, f"customer-{customer_id}.json", chunks)


@routes.add(
    "POST", "/api/v1/admin/customers/{id}/erase", access=SUPERADMIN, tags=("admin",), body=EraseIn,
    response=ErasureOut, summary="Erase a customer's personal data, keeping finance rows anonymously",
    errors=(errors.NotFound, errors.CustomerErased),
)  # fmt: skip
async def erase_customer(request: web.Request, body: EraseIn) -> ErasureOut:
    app = request.app
    report = await privacy.erase_customer(
        app[REDIS], path_int(request, "id"), actor=actor_of(request), reason=body.reason,
        token_ttl_seconds=app[SETTINGS].access_token_ttl, erased=app[ERASED],
    )  # fmt: skip
    return ErasureOut.of(report)
