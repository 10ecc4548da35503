"""Campaign analytics for admins: one campaign per day (JSON and CSV), an overview, and a
theme's roll-up of its campaigns (JSON and CSV)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common import csv_export
from handlers.common.schemas import PageQuery
from server.access import ANY_ADMIN
from server.keys import REDIS
from server.routing import RouteTable, path_int
from services.analytics import MAX_RANGE_DAYS
from services.analytics import reports as analytics
from services.core import Day, Out, Query, errors

routes = RouteTable()


class RangeQuery(Query):
    date_from: Day | None = Field(default=None, description="first UTC day, YYYY-MM-DD (inclusive)")
    date_to: Day | None = Field(
        default=None,
        description=f"last UTC day, YYYY-MM-DD (inclusive); at most {MAX_RANGE_DAYS} days in all",
    )


class OverviewQuery(RangeQuery, PageQuery):
    sort: analytics.OverviewSort = Field(default="impressions", description="ranked by this, highest first")


class FiguresOut(Out):
    impressions: int
    clicks: int
    reach: int = Field(description="unique customers shown the campaign (HyperLogLog, about 0.81% error)")
    clickers: int = Field(description="unique customers who clicked (HyperLogLog)")
    ctr: float = Field(description="clicks / impressions, 4 places")
    joined: int
    completed: int
    vouchers_issued: int = Field(description="grabbed and granted")
    face_value_issued: int
    vouchers_redeemed: int = Field(description="redemptions not reversed")
    face_value_redeemed: int
    order_amount: int = Field(description="order amounts recorded at redemption")
    redemption_rate: float = Field(description="vouchers_redeemed / vouchers_issued, 4 places")
    sections: dict[str, int] = Field(description="impressions:<section> and clicks:<section> counts")


class DayOut(FiguresOut):
    date: dt.date


class BudgetOut(Out):
    limit: int | None = Field(description="fen; null = no cap")
    spent: int = Field(description="face value issued over the campaign's life (fen)")
    left: int | None


class CouponFiguresOut(Out):
    coupon_id: int
    title: dict[str, str]
    face_value: int
    total_stock: int
    issued: int
    redeemed: int
    stock_left: int
    stock_source: Literal["redis", "database"]
    manual_grants: int = Field(description="of issued: granted by hand by customer service")
    voided_returned: int = Field(description="of issued: voided by customer service, stock and budget given back")


class CampaignAnalyticsOut(Out):
    campaign_id: int
    title: str | None
    status: str
    type: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    date_from: dt.date
    date_to: dt.date
    totals: FiguresOut
    days: list[DayOut]
    budget: BudgetOut
    coupons: list[CouponFiguresOut] = Field(description="over the campaign's whole life")


class OverviewRowOut(Out):
    campaign_id: int
    title: str | None
    status: str
    type: str
    impressions: int
    clicks: int
    ctr: float
    participants: int = Field(description="joined in the range")
    vouchers_issued: int
    vouchers_redeemed: int
    budget_spent: int = Field(description="over the campaign's life (fen)")


class OverviewOut(Out):
    date_from: dt.date
    date_to: dt.date
    sort: str
    total: int = Field(description="campaigns live in the range")
    items: list[OverviewRowOut]
    next_cursor: str | None


def _figures(f: analytics.Figures) -> dict[str, Any]:
    return {
        "impressions": f.impressions, "clicks": f.clicks, "reach": f.reach, "clickers": f.clickers, "ctr": f.ctr,
        "joined": f.joined, "completed": f.completed, "vouchers_issued": f.vouchers_issued,
        "face_value_issued": f.face_value_issued, "vouchers_redeemed": f.vouchers_redeemed,
        "face_value_redeemed": f.face_value_redeemed, "order_amount": f.order_amount,
        "redemption_rate": f.redemption_rate, "sections": f.sections,
    }  # fmt: skip


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def _campaign(request: web.Request, query: RangeQuery) -> analytics.CampaignAnalytics:
    return await analytics.campaign_analytics(
        request.app[REDIS], path_int(request, "id"), query.date_from, query.date_to, _today()
    )


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/analytics", access=ANY_ADMIN, tags=("analytics",), query=RangeQuery,
    response=CampaignAnalyticsOut, errors=(errors.NotFound,),
    summary="A campaign's traffic and funnel per UTC day and in total (default: its period up to today), "
    "budget, and each coupon's issued, redeemed and stock left",
)  # fmt: skip
async def campaign_analytics(request: web.Request, query: RangeQuery) -> CampaignAnalyticsOut:
    a = await _campaign(request, query)
    c = a.campaign
    return CampaignAnalyticsOut(
        campaign_id=c.id, title=a.title, status=c.status, type=c.type, starts_at=c.starts_at, ends_at=c.ends_at,
        date_from=a.range.first, date_to=a.range.last, totals=FiguresOut(**_figures(a.totals)),
        days=[DayOut(date=d.day, **_figures(d)) for d in a.days],
        budget=BudgetOut(
            limit=c.budget_limit, spent=c.budget_spent,
            left=None if c.budget_limit is None else max(0, c.budget_limit - c.budget_spent),
        ),
        coupons=[CouponFiguresOut(**vars(coupon)) for coupon in a.coupons],
    )  # fmt: skip


CSV_COLUMNS = (
    "date", "campaign_id", "campaign_title", "impressions", "clicks", "reach", "clickers", "ctr", "joined",
    "completed", "vouchers_issued", "face_value_issued", "vouchers_redeemed", "face_value_redeemed", "order_amount",
    "redemption_rate",
)  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/analytics.csv", access=ANY_ADMIN, tags=("analytics",), query=RangeQuery,
    media_type="text/csv", errors=(errors.NotFound,),
    summary="The same per-day rows as CSV (header row; text cells guarded against formulas)",
)  # fmt: skip
async def export_campaign_analytics(request: web.Request, query: RangeQuery) -> web.StreamResponse:
    # Computed before the response starts, so a bad range or unknown campaign is still a JSON error.
    a = await _campaign(request, query)

    async def batches() -> AsyncIterator[list[list[str]]]:
        for start in range(0, len(a.days), 100):
            values = [
                {"date": d.day.isoformat(), "campaign_id": a.campaign.id, "campaign_title": a.title, **_figures(d)}
                for d in a.days[start : start + 100]
            ]
            yield [[csv_export.cell(v[c]) for c in CSV_COLUMNS] for v in values]

    return await csv_export.stream(request, f"campaign-{a.campaign.id}-analytics.csv", CSV_COLUMNS, batches())


@routes.add(
    "GET", "/api/v1/admin/analytics/overview", access=ANY_ADMIN, tags=("analytics",), query=OverviewQuery,
    response=OverviewOut, errors=(errors.AnalyticsTooBroad,),
    summary="One row per campaign live in the range (default: the last 30 days), ranked by sort, paginated",
)  # fmt: skip
async def analytics_overview(request: web.Request, query: OverviewQuery) -> OverviewOut:
    o = await analytics.overview(
        request.app[REDIS], query.date_from, query.date_to, query.sort, query.cursor, query.limit, _today()
    )
    return OverviewOut(
        date_from=o.range.first, date_to=o.range.last, sort=o.sort, total=o.total, next_cursor=o.next_cursor,
        items=[
            OverviewRowOut(
                campaign_id=r.campaign_id, title=r.title, status=r.status, type=r.type, impressions=r.impressions,
                clicks=r.clicks, ctr=r.ctr, participants=r.participants, vouchers_issued=r.vouchers_issued,
                vouchers_redeemed=r.vouchers_redeemed, budget_spent=r.budget_spent,
            )
            for r in o.rows
        ],
    )  # fmt: skip


# --------------------------------------------------------------------------- a theme


class ThemeFiguresOut(Out):
    impressions: int
    clicks: int
    reach: int = Field(
        description="customers shown the campaign (HyperLogLog); a theme's total sums its campaigns': a customer "
        "reached by two of them counts twice"
    )
    clickers: int
    ctr: float = Field(description="clicks / impressions, 4 places")
    joined: int
    completed: int
    vouchers_issued: int
    face_value_issued: int
    vouchers_redeemed: int = Field(description="redemptions not reversed")
    face_value_redeemed: int
    order_amount: int
    redemption_rate: float
    budget_spent: int = Field(description="face value issued over the campaigns' lives (fen), whatever the range")


class ThemeCampaignOut(ThemeFiguresOut):
    campaign_id: int
    title: str | None
    status: str
    type: str
    starts_at: dt.datetime
    ends_at: dt.datetime


class ThemeAnalyticsOut(Out):
    theme_id: int
    name: str
    date_from: dt.date
    date_to: dt.date
    totals: ThemeFiguresOut
    campaigns: list[ThemeCampaignOut] = Field(description="the theme's campaigns, in order of start")


def _theme_figures(f: analytics.Figures, budget_spent: int) -> dict[str, Any]:
    return {k: v for k, v in _figures(f).items() if k != "sections"} | {"budget_spent": budget_spent}


async def _theme(request: web.Request, query: RangeQuery) -> analytics.ThemeAnalytics:
    return await analytics.theme_analytics(
        request.app[REDIS], path_int(request, "id"), query.date_from, query.date_to, _today()
    )


# Declared before the JSON route: its path would take "1.csv" as an id.
THEME_CSV_COLUMNS = (
    "campaign_id", "campaign_title", "status", "impressions", "clicks", "reach", "clickers", "ctr", "joined",
    "completed", "vouchers_issued", "face_value_issued", "vouchers_redeemed", "face_value_redeemed", "order_amount",
    "redemption_rate", "budget_spent",
)  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/analytics/themes/{id}.csv", access=ANY_ADMIN, tags=("analytics",), query=RangeQuery,
    media_type="text/csv", errors=(errors.NotFound,),
    summary="The theme's campaign rows as CSV, then a totals row (campaign_id empty; text cells guarded)",
)  # fmt: skip
async def export_theme_analytics(request: web.Request, query: RangeQuery) -> web.StreamResponse:
    # Computed before the response starts, so a bad range or unknown theme is still a JSON error.
    a = await _theme(request, query)
    values = [
        {"campaign_id": row.campaign.id, "campaign_title": row.title, "status": row.campaign.status,
         **_theme_figures(row.figures, row.budget_spent)}
        for row in a.campaigns
    ]  # fmt: skip
    total = _theme_figures(a.totals, a.budget_spent)
    values.append({"campaign_id": "", "campaign_title": "total", "status": "", **total})

    async def batches() -> AsyncIterator[list[list[str]]]:
        yield [[csv_export.cell(v[c]) for c in THEME_CSV_COLUMNS] for v in values]

    return await csv_export.stream(request, f"theme-{a.theme.id}-analytics.csv", THEME_CSV_COLUMNS, batches())


@routes.add(
    "GET", "/api/v1/admin/analytics/themes/{id}", access=ANY_ADMIN, tags=("analytics",), query=RangeQuery,
    response=ThemeAnalyticsOut, errors=(errors.NotFound,),
    summary="A theme's roll-up: each of its campaigns and all together over the range (default: from the first "
    "start to the last end, up to today): reach, traffic, joins, vouchers issued and redeemed, budget spent",
)  # fmt: skip
async def theme_analytics(request: web.Request, query: RangeQuery) -> ThemeAnalyticsOut:
    a = await _theme(request, query)
    return ThemeAnalyticsOut(
        theme_id=a.theme.id, name=a.theme.name, date_from=a.range.first, date_to=a.range.last,
        totals=ThemeFiguresOut(**_theme_figures(a.totals, a.budget_spent)),
        campaigns=[
            ThemeCampaignOut(
                campaign_id=row.campaign.id, title=row.title, status=row.campaign.status, type=row.campaign.type,
                starts_at=row.campaign.starts_at, ends_at=row.campaign.ends_at,
                **_theme_figures(row.figures, row.budget_spent),
            )
            for row in a.campaigns
        ],
    )  # fmt: skip
