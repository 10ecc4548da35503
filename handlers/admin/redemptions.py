"""Redemptions across stores for admins (list, CSV export, reversal by customer service), and
campaign poster codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import Field, model_validator

from handlers.common import csv_export
from handlers.common.actors import actor_of
from handlers.common.schemas import PageQuery
from handlers.staff.redemptions import RedemptionOut, RedemptionPageOut, ReverseIn, TotalsOut, redemption_out
from server.access import ANY_ADMIN, admin
from server.keys import REDIS, SETTINGS, WECHAT
from server.routing import RouteTable, path_int
from services.content import posters
from services.core import Day, Id, Query, errors
from services.wallet import redemption, redemption_lists

routes = RouteTable()


class FilterQuery(Query):
    store_id: Id | None = None
    campaign_id: Id | None = None
    staff_id: Id | None = None
    date_from: Day | None = Field(default=None, description="first UTC day, YYYY-MM-DD (inclusive)")
    date_to: Day | None = Field(default=None, description="last UTC day, YYYY-MM-DD (inclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> FilterQuery:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        return self

    def filters(self) -> redemption_lists.Filters:
        return redemption_lists.Filters(
            store_id=self.store_id, campaign_id=self.campaign_id, staff_id=self.staff_id,
            date_from=self.date_from, date_to=self.date_to,
        )  # fmt: skip


class AdminListQuery(FilterQuery, PageQuery):
    pass


@routes.add(
    "GET", "/api/v1/admin/redemptions", access=ANY_ADMIN, tags=("redemptions",), query=AdminListQuery,
    response=RedemptionPageOut,
    summary="Redemptions across stores, newest first (store_id, campaign_id, staff_id, date_from, date_to), "
    "with totals over the whole filtered set",
)  # fmt: skip
async def list_redemptions(request: web.Request, query: AdminListQuery) -> RedemptionPageOut:
    filters = query.filters()
    views, nxt = await redemption_lists.page(filters, query.cursor, query.limit)
    totals = await redemption_lists.totals(filters)
    return RedemptionPageOut(
        items=[redemption_out(v) for v in views], next_cursor=nxt, totals=TotalsOut(**totals.__dict__)
    )


@routes.add(
    "POST", "/api/v1/admin/redemptions/{id}/reverse", access=admin("operator", "superadmin"),
    tags=("redemptions",), body=ReverseIn, response=RedemptionOut,
    errors=(errors.NotFound, errors.AlreadyReversed, errors.ReversalWindowPassed),
    summary="Reverse a redemption of any store (customer service: operators and superadmins), on a store "
    "manager's terms: within REDEMPTION_REVERSE_WINDOW_SECONDS, once, with a reason; reversed_by stays null",
)  # fmt: skip
async def admin_reverse_redemption(request: web.Request, body: ReverseIn) -> RedemptionOut:
    row = await redemption.reverse_for_admin(
        actor_of(request), path_int(request, "id"), body.reason, request.app[SETTINGS].redemption_reverse_window_seconds
    )
    [view] = await redemption_lists.describe([row])
    return redemption_out(view)


CSV_COLUMNS = (
    "id", "created_at", "store_id", "store_name", "staff_id", "staff_name", "campaign_id", "coupon_id",
    "voucher_id", "voucher_code_masked", "customer_id", "face_value", "order_ref", "order_amount",
    "reversed_at", "reversed_by", "reverse_reason",
)  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/redemptions.csv", access=ANY_ADMIN, tags=("redemptions",), query=FilterQuery,
    media_type="text/csv",
    summary="The same redemptions as CSV (header row, streamed; voucher codes masked)",
)  # fmt: skip
async def export_redemptions(request: web.Request, query: FilterQuery) -> web.StreamResponse:
    async def batches() -> AsyncIterator[list[list[str]]]:
        async for batch in redemption_lists.export(query.filters()):
            yield [[csv_export.cell(getattr(v, c)) for c in CSV_COLUMNS] for v in batch]

    return await csv_export.stream(request, "redemptions.csv", CSV_COLUMNS, batches())


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/poster-code", access=ANY_ADMIN, tags=("campaigns",),
    media_type="image/png", errors=(errors.NotFound, errors.WeChatUnavailableError, errors.WeChatError),
    summary="The WeChat mini-program code opening the campaign (for posters and signage); cached a day",
)  # fmt: skip
async def campaign_poster_code(request: web.Request) -> web.Response:
    image, content_type = await posters.campaign_code(request.app[REDIS], request.app[WECHAT], path_int(request, "id"))
    return web.Response(body=image, content_type=content_type, headers={"Cache-Control": "private, max-age=3600"})
