"""Did it pay (issue 18): a campaign's ROI with its inputs, the drill-down of the funnel,
redemptions, attributed revenue and ROI by store, channel, saved segment, tier, lifecycle
stage or theme (JSON and CSV), and the newline-JSON bulk export of raw rows for BI tools."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import Field

from handlers.admin.analytics import RangeQuery
from handlers.common import csv_export, json_export
from server.access import admin
from server.keys import SETTINGS
from server.routing import RouteTable, path_int
from services import analytics
from services.core import Id, Out, errors

routes = RouteTable()

#: Revenue and cost figures: the roles that run and approve campaigns (a reviewer checks
#: content and needs no revenue).
FIGURE_READERS = admin("operator", "approver", "superadmin")
#: Raw rows (customer ids, order numbers) leave the system: operators and superadmins.
EXPORTERS = admin("operator", "superadmin")


class RoiFiguresOut(Out):
    joined: int
    completed: int
    vouchers_issued: int
    face_value_issued: int = Field(description="fen")
    vouchers_redeemed: int = Field(description="redemptions not reversed")
    face_value_redeemed: int = Field(description="fen")
    voucher_cost: int = Field(
        description="fen actually given off on redeemed vouchers: a percent coupon's order_amount x percent_off / "
        "100 capped at its face value (the face value when no order amount was recorded), else the face value"
    )
    attributed_orders: int = Field(description="purchases attributed (not refunded)")
    attributed_revenue: int = Field(description="fen: their amounts")
    points: int = Field(description="net points the campaign gave (rewards less claw-backs)")
    points_cost: int = Field(description="fen: points x POINTS_COST_FEN")
    cost: int = Field(description="fen: voucher_cost + points_cost")
    roi: float | None = Field(description="(attributed_revenue - cost) / cost, 4 places; null: see roi_reason")
    roi_reason: str | None = Field(description="why roi is null: no_cost (cost is 0); null when roi has a value")


class CampaignRoiOut(Out):
    campaign_id: int
    title: str | None
    date_from: dt.date
    date_to: dt.date
    points_cost_fen: int = Field(description="fen a point costs (the POINTS_COST_FEN setting)")
    attribution_window_days: int = Field(description="the ATTRIBUTION_WINDOW_DAYS setting")
    figures: RoiFiguresOut


class DrilldownQuery(RangeQuery):
    by: analytics.Dimension = Field(description="the dimension rows are grouped by")
    campaign_id: Id | None = Field(default=None, description="one campaign (default: all campaigns)")


class DrilldownRowOut(RoiFiguresOut):
    key: str | None = Field(
        description="the dimension's value (a store, segment or theme id, a channel, tier or stage); null: facts "
        "without one (e.g. joins by store)"
    )
    label: str | None = Field(description="the store's, segment's or theme's name; the key itself for other dimensions")


class DrilldownOut(Out):
    campaign_id: int | None
    by: str
    date_from: dt.date
    date_to: dt.date
    rows: list[DrilldownRowOut] = Field(description="highest attributed revenue first")
    total: RoiFiguresOut = Field(description="by no dimension (channel rows may overlap: they need not add up)")


class ExportQuery(RangeQuery):
    kind: analytics.ExportKind = Field(description="which rows")
    campaign_id: Id | None = Field(default=None, description="one campaign (not for purchases)")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _fen_per_point(request: web.Request) -> int:
    return request.app[SETTINGS].points_cost_fen


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/roi", access=FIGURE_READERS, tags=("analytics",), query=RangeQuery,
    response=CampaignRoiOut, errors=(errors.NotFound,),
    summary="A campaign's ROI = (attributed revenue - cost of redeemed vouchers - points cost) / cost, with each "
    "input (default range: its period up to today); roi null with roi_reason when the cost is 0",
)  # fmt: skip
async def campaign_roi(request: web.Request, query: RangeQuery) -> CampaignRoiOut:
    settings = request.app[SETTINGS]
    found = await analytics.campaign_roi(
        path_int(request, "id"), query.date_from, query.date_to, _today(), fen_per_point=settings.points_cost_fen
    )
    return CampaignRoiOut(
        campaign_id=found.campaign.id, title=found.title, date_from=found.range.first, date_to=found.range.last,
        points_cost_fen=settings.points_cost_fen, attribution_window_days=settings.attribution_window_days,
        figures=RoiFiguresOut(**found.figures.as_dict()),
    )  # fmt: skip


async def _drilldown(request: web.Request, query: DrilldownQuery) -> analytics.Drilldown:
    return await analytics.drilldown(
        campaign_id=query.campaign_id, by=query.by, date_from=query.date_from, date_to=query.date_to,
        today=_today(), fen_per_point=_fen_per_point(request),
    )  # fmt: skip


DRILLDOWN_CSV_COLUMNS = (
    "by", "key", "label", "joined", "completed", "vouchers_issued", "face_value_issued", "vouchers_redeemed",
    "face_value_redeemed", "voucher_cost", "attributed_orders", "attributed_revenue", "points", "points_cost", "cost",
    "roi", "roi_reason",
)  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/analytics/drilldown.csv", access=FIGURE_READERS, tags=("analytics",),
    query=DrilldownQuery, media_type="text/csv", errors=(errors.NotFound, errors.AnalyticsTooBroad),
    summary="The drill-down's rows as CSV, then a totals row (key empty, label total; text cells guarded)",
)  # fmt: skip
async def export_drilldown(request: web.Request, query: DrilldownQuery) -> web.StreamResponse:
    # Computed before the response starts, so a bad query or unknown campaign is still a JSON error.
    d = await _drilldown(request, query)
    values: list[dict[str, Any]] = [
        {"by": d.by, "key": g.key, "label": g.label, **g.figures.as_dict()} for g in d.groups
    ]
    values.append({"by": d.by, "key": "", "label": "total", **d.total.as_dict()})

    async def batches() -> AsyncIterator[list[list[str]]]:
        for start in range(0, len(values), 500):
            yield [[csv_export.cell(v[c]) for c in DRILLDOWN_CSV_COLUMNS] for v in values[start : start + 500]]

    scope = f"campaign-{d.campaign_id}" if d.campaign_id is not None else "all"
    return await csv_export.stream(request, f"drilldown-{scope}-by-{d.by}.csv", DRILLDOWN_CSV_COLUMNS, batches())


@routes.add(
    "GET", "/api/v1/admin/analytics/drilldown", access=FIGURE_READERS, tags=("analytics",), query=DrilldownQuery,
    response=DrilldownOut, errors=(errors.NotFound, errors.AnalyticsTooBroad),
    summary="The funnel, redemptions, attributed revenue and ROI per store, channel, saved segment, tier, lifecycle "
    "stage or theme, for one campaign or all (default range: the campaign's period up to today, or the last 30 days)",
)  # fmt: skip
async def drilldown(request: web.Request, query: DrilldownQuery) -> DrilldownOut:
    d = await _drilldown(request, query)
    return DrilldownOut(
        campaign_id=d.campaign_id, by=d.by, date_from=d.range.first, date_to=d.range.last,
        rows=[DrilldownRowOut(key=g.key, label=g.label, **g.figures.as_dict()) for g in d.groups],
        total=RoiFiguresOut(**d.total.as_dict()),
    )  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/analytics/export.ndjson", access=EXPORTERS, tags=("analytics",), query=ExportQuery,
    media_type="application/x-ndjson", errors=(),
    summary="Raw rows for BI tools as newline-delimited JSON (purchases, redemptions, attributions or "
    "participations in the range, default the last 30 days), streamed in id order; the last line is "
    '{"end": true, "kind": ..., "rows": N}: a file without it is incomplete',
)  # fmt: skip
async def bulk_export(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    today = _today()
    r = analytics.resolve_range(
        query.date_from, query.date_to, analytics.DateRange(today - dt.timedelta(days=29), today)
    )
    lines = analytics.export_lines(query.kind, r, campaign_id=query.campaign_id)
    return await json_export.stream(
        request, f"{query.kind}-{r.first.isoformat()}-{r.last.isoformat()}.ndjson", lines,
        content_type="application/x-ndjson",
    )  # fmt: skip
