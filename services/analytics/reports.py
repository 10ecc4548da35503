"""Campaign analytics for admins: traffic from Redis (services/analytics/tracking.py)
joined with the funnel from the database (services/analytics/funnel.py), per UTC day and
over a range for one campaign, and an overview across campaigns.

The cost is bounded whatever the range: a fixed number of SQL statements and one
pipelined Redis round trip per call.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from typing import Literal

from tortoise import connections
from tortoise.functions import Count

from models.campaigns import Campaign, CouponTemplate, Theme
from models.redemptions import Redemption
from models.vouchers import Voucher
from services.analytics import tracking
from services.analytics.funnel import (
    COUNTED,
    DateRange,
    Funnel,
    _bound,
    campaign_period,
    funnel_by_day,
    funnel_of_campaigns,
    invalid_query,
    live_in,
    resolve_range,
)
from services.campaigns import title_of
from services.core import AnyRedis, Params, dialect_of, errors
from services.stock import stock_left

#: The overview's default range: the last 30 days.
OVERVIEW_DEFAULT_DAYS = 30
#: Ranking by traffic reads one Redis hash per campaign and day of every campaign live in
#: the range: past this many, the request is refused rather than left to run long.
OVERVIEW_MAX_CELLS = 50_000

OverviewSort = Literal[
    "impressions", "clicks", "ctr", "participants", "vouchers_issued", "vouchers_redeemed", "budget_spent"
]
#: Sorts that need every candidate's traffic from Redis before a page can be cut.
TRAFFIC_SORTS = frozenset({"impressions", "clicks", "ctr"})


def rate(part: int, whole: int) -> float:
    """``part / whole`` to 4 places, 0.0 when there is no whole."""
    return round(part / whole, 4) if whole else 0.0


# --------------------------------------------------------------------------- one campaign


@dataclass
class Figures(Funnel):
    impressions: int = 0
    clicks: int = 0
    reach: int = 0
    clickers: int = 0
    sections: dict[str, int] = field(default_factory=dict)

    @property
    def ctr(self) -> float:
        return rate(self.clicks, self.impressions)

    @property
    def redemption_rate(self) -> float:
        return rate(self.vouchers_redeemed, self.vouchers_issued)


@dataclass
class DayFigures(Figures):
    day: date = date.min


@dataclass(frozen=True)
class CouponFigures:
    """A coupon over the campaign's whole life (stock is not a per-day figure)."""

    coupon_id: int
    title: dict[str, str]
    face_value: int
    total_stock: int
    issued: int
    redeemed: int
    stock_left: int
    stock_source: Literal["redis", "database"]
    #: Of ``issued``: granted by hand by customer service, and voided by it with their
    #: stock given back.
    manual_grants: int = 0
    voided_returned: int = 0


@dataclass(frozen=True)
class CampaignAnalytics:
    campaign: Campaign
    range: DateRange
    days: list[DayFigures]
    totals: Figures
    coupons: list[CouponFigures]

    @property
    def title(self) -> str | None:
        return title_of(self.campaign.content, self.campaign.default_language)


async def campaign_analytics(
    redis: AnyRedis, campaign_id: int, date_from: date | None, date_to: date | None, today: date
) -> CampaignAnalytics:
    """Traffic and funnel per day and in total, and the coupons. 404 for an unknown campaign."""
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise errors.NotFound(f"no campaign {campaign_id}")
    r = resolve_range(date_from, date_to, campaign_period(campaign, today))
    traffic = await tracking.over_range(redis, campaign.id, r.days)
    funnel = await funnel_by_day(campaign.id, r)
    days = []
    totals = Figures(reach=traffic.reach, clickers=traffic.clickers)
    for day, seen in zip(r.days, traffic.days, strict=True):
        row = DayFigures(
            day=day, impressions=seen.impressions, clicks=seen.clicks, reach=seen.reach, clickers=seen.clickers,
            sections=seen.sections, **funnel.get(day, Funnel()).__dict__,
        )  # fmt: skip
        days.append(row)
        totals.impressions += row.impressions
        totals.clicks += row.clicks
        for name, n in row.sections.items():
            totals.sections[name] = totals.sections.get(name, 0) + n
        for kind, n, face, amount in (
            ("joined", row.joined, 0, 0),
            ("completed", row.completed, 0, 0),
            ("issued", row.vouchers_issued, row.face_value_issued, 0),
            ("redeemed", row.vouchers_redeemed, row.face_value_redeemed, row.order_amount),
        ):
            totals.add(kind, n, face, amount)
    return CampaignAnalytics(campaign, r, days, totals, await coupon_figures(redis, campaign.id))


async def coupon_figures(redis: AnyRedis, campaign_id: int) -> list[CouponFigures]:
    """Each coupon's vouchers issued and redeemed (not reversed), and its stock left: the
    live Redis counter when the coupon is loaded, else total stock less issued."""
    templates = await CouponTemplate.filter(campaign_id=campaign_id).order_by("id")
    if not templates:
        return []
    ids = [t.id for t in templates]
    issued = dict(
        await Voucher.filter(template_id__in=ids)
        .annotate(n=Count("id"))
        .group_by("template_id")
        .values_list("template_id", "n")
    )
    manual = dict(
        await Voucher.filter(template_id__in=ids, granted_by__not_isnull=True)
        .annotate(n=Count("id"))
        .group_by("template_id")
        .values_list("template_id", "n")
    )
    returned = dict(
        await Voucher.filter(template_id__in=ids, stock_returned=True)
        .annotate(n=Count("id"))
        .group_by("template_id")
        .values_list("template_id", "n")
    )
    redeemed = dict(
        await Redemption.filter(campaign_id=campaign_id, reversed_at=None)
        .annotate(n=Count("id"))
        .group_by("template_id")
        .values_list("template_id", "n")
    )
    stock = await stock_left(redis, campaign_id, {t.id: t.total_stock for t in templates})
    out = []
    for template in templates:
        n_issued = int(issued.get(template.id, 0))
        left, source = stock[template.id]
        out.append(
            CouponFigures(
                coupon_id=template.id, title=template.title, face_value=template.face_value,
                total_stock=template.total_stock, issued=n_issued,
                redeemed=int(redeemed.get(template.id, 0)),
                stock_left=left, stock_source=source, manual_grants=int(manual.get(template.id, 0)),
                voided_returned=int(returned.get(template.id, 0)),
            )
        )  # fmt: skip
    return out


# --------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class OverviewRow:
    campaign_id: int
    title: str | None
    status: str
    type: str
    impressions: int
    clicks: int
    participants: int
    vouchers_issued: int
    vouchers_redeemed: int
    budget_spent: int

    @property
    def ctr(self) -> float:
        return rate(self.clicks, self.impressions)


@dataclass(frozen=True)
class Overview:
    range: DateRange
    sort: str
    total: int
    rows: list[OverviewRow]
    next_cursor: str | None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The offset to continue from (0 for the first page); a forged cursor is a 422."""
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid_query("cursor", "not a cursor this server issued", "invalid_cursor")
    return value


async def overview(
    redis: AnyRedis,
    date_from: date | None,
    date_to: date | None,
    sort: OverviewSort,
    cursor: str | None,
    limit: int,
    today: date,
) -> Overview:
    """One row per campaign live in the range, best first by ``sort`` (ties: newest
    campaign first), a page of ``limit`` at a time (an offset cursor over the ranking as
    it stands at each request). Traffic sorts read every candidate's traffic, so they
    are refused past OVERVIEW_MAX_CELLS campaign-days (analytics_too_broad)."""
    r = resolve_range(date_from, date_to, DateRange(today - timedelta(days=OVERVIEW_DEFAULT_DAYS - 1), today))
    offset = decode_cursor(cursor)
    if sort in TRAFFIC_SORTS:
        total, page, candidates, funnel, traffic = await _ranked_by_traffic(redis, r, sort, offset, limit)
    else:
        total, page, candidates = await _ranked_in_sql(r, sort, offset, limit)
        funnel = await funnel_of_campaigns(page, r)
        traffic = await tracking.counts_over(redis, page, r.days) if page else {}
    titles = await _titles(page)
    rows = []
    for cid in page:
        status, kind, spent = candidates[cid]
        f = funnel.get(cid, Funnel())
        impressions, clicks = traffic.get(cid, (0, 0))
        rows.append(
            OverviewRow(
                campaign_id=cid, title=titles.get(cid), status=status, type=kind, impressions=impressions,
                clicks=clicks, participants=f.joined, vouchers_issued=f.vouchers_issued,
                vouchers_redeemed=f.vouchers_redeemed, budget_spent=spent,
            )
        )  # fmt: skip
    nxt = encode_cursor(offset + limit) if offset + limit < total else None
    return Overview(r, sort, total, rows, nxt)


#: A database sort's figure: the funnel count (funnel.COUNTED) it ranks by, per campaign
#: over the range. budget_spent is the campaign's own column.
_SORT_COUNTS = {"participants": "joined", "vouchers_issued": "issued", "vouchers_redeemed": "redeemed"}


async def _ranked_in_sql(
    r: DateRange, sort: str, offset: int, limit: int
) -> tuple[int, list[int], dict[int, tuple[str, str, int]]]:
    """A database sort ranked by the database: (how many campaigns are live in the range,
    the page's ids in order, their status, type and budget spent). Two statements, each
    answering at most ``limit`` rows: the figures are counted as funnel.py counts them
    (same columns, same UTC bounds), ordered highest first, ties to the newer campaign.

    Why not in Python: ranking every live campaign here meant reading all of them and
    their funnel (thousands of rows) to keep twenty; see docs/analytics.md."""
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    live = live_in(p, r)
    _, counted = await conn.execute_query(f"SELECT COUNT(*) AS n FROM campaigns WHERE {live}", p.values)
    total = int(counted[0]["n"])
    if offset >= total:
        return total, [], {}
    p = Params(p.dialect)
    live = live_in(p, r)  # the same condition in this statement's parameters
    figure, join = "c.budget_spent", ""
    if sort in _SORT_COUNTS:
        # Counted for the live campaigns only (their (campaign_id, time) index), grouped,
        # then joined: one pass, where a correlated count per campaign made PostgreSQL's
        # cost estimate large enough to JIT-compile the statement (200 ms).
        counted = COUNTED[_SORT_COUNTS[sort]]
        lo, hi = p(_bound(p.dialect, r.start)), p(_bound(p.dialect, r.end))
        join = (
            f" LEFT JOIN (SELECT x.campaign_id AS campaign_id, COUNT(*) AS n FROM {counted.table} x"
            f" WHERE x.campaign_id IN (SELECT id FROM campaigns WHERE {live})"
            f" AND {counted.condition(lo, hi, 'x.')} GROUP BY x.campaign_id) m ON m.campaign_id = c.id"
        )
        figure = "COALESCE(m.n, 0)"
    _, found = await conn.execute_query(
        f"SELECT c.id AS id, c.status AS status, c.type AS type, c.budget_spent AS budget_spent, {figure} AS v"
        f" FROM campaigns c{join} WHERE {live} ORDER BY v DESC, c.id DESC LIMIT {p(limit)} OFFSET {p(offset)}",
        p.values,
    )
    page = [int(row["id"]) for row in found]
    candidates = {int(row["id"]): (str(row["status"]), str(row["type"]), int(row["budget_spent"])) for row in found}
    return total, page, candidates


async def _ranked_by_traffic(
    redis: AnyRedis, r: DateRange, sort: str, offset: int, limit: int
) -> tuple[int, list[int], dict[int, tuple[str, str, int]], dict[int, Funnel], dict[int, tuple[int, int]]]:
    """A traffic sort: every live campaign's traffic is read from Redis and ranked here
    (refused past OVERVIEW_MAX_CELLS campaign-days)."""
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    _, found = await conn.execute_query(
        f"SELECT id, status, type, budget_spent FROM campaigns WHERE {live_in(p, r)}", p.values
    )
    candidates = {int(row["id"]): (str(row["status"]), str(row["type"]), int(row["budget_spent"])) for row in found}
    days = r.days
    cells = len(candidates) * len(days)
    if cells > OVERVIEW_MAX_CELLS:
        raise errors.AnalyticsTooBroad(
            details={"campaigns": len(candidates), "days": len(days), "max_cells": OVERVIEW_MAX_CELLS}
        )
    traffic = await tracking.counts_over(redis, sorted(candidates), days)

    def key(cid: int) -> tuple[float, int]:
        impressions, clicks = traffic[cid]
        value = {"impressions": impressions, "clicks": clicks, "ctr": rate(clicks, impressions)}[sort]
        return (-value, -cid)

    ranked = sorted(candidates, key=key)
    page = ranked[offset : offset + limit]
    return len(ranked), page, candidates, await funnel_of_campaigns(page, r), traffic


async def _titles(campaign_ids: Sequence[int]) -> dict[int, str | None]:
    if not campaign_ids:
        return {}
    rows = await Campaign.filter(id__in=list(campaign_ids)).only("id", "content", "default_language")
    return {c.id: title_of(c.content, c.default_language) for c in rows}


# --------------------------------------------------------------------------- a theme


@dataclass(frozen=True)
class ThemeCampaignFigures:
    """One campaign of a theme over the range (its budget spent: over its whole life)."""

    campaign: Campaign
    title: str | None
    figures: Figures
    budget_spent: int


@dataclass(frozen=True)
class ThemeAnalytics:
    theme: Theme
    range: DateRange
    campaigns: list[ThemeCampaignFigures]
    totals: Figures
    budget_spent: int


def theme_period(campaigns: list[Campaign], today: date) -> DateRange:
    """From the first campaign's start to the last one's end, up to today (just today
    for a theme without campaigns, or whose campaigns have not started)."""
    if not campaigns:
        return DateRange(today, today)
    last = min(max(c.ends_at for c in campaigns).astimezone(UTC).date(), today)
    first = min(min(c.starts_at for c in campaigns).astimezone(UTC).date(), last)
    return DateRange(first, last)


async def theme_analytics(
    redis: AnyRedis, theme_id: int, date_from: date | None, date_to: date | None, today: date
) -> ThemeAnalytics:
    """A theme's campaigns over the range, each and together: reach, impressions, clicks
    (from Redis), joins, completions, vouchers issued and redeemed (from the database),
    and budget spent (over the campaigns' lives). The theme's reach is the sum of its
    campaigns' (a customer reached by two of them counts twice: their counters live under
    different hash tags, see docs/analytics.md). Two SQL statements and one Redis round
    trip per campaign. 404 for an unknown theme."""
    theme = await Theme.get_or_none(id=theme_id)
    if theme is None:
        raise errors.NotFound(f"no theme {theme_id}")
    campaigns = await Campaign.filter(theme_id=theme.id).order_by("starts_at", "id")
    r = resolve_range(date_from, date_to, theme_period(campaigns, today))
    funnel = await funnel_of_campaigns([c.id for c in campaigns], r)
    totals = Figures()
    rows = []
    for c in campaigns:
        traffic = await tracking.over_range(redis, c.id, r.days)
        f = Figures(
            impressions=sum(d.impressions for d in traffic.days), clicks=sum(d.clicks for d in traffic.days),
            reach=traffic.reach, clickers=traffic.clickers, **funnel.get(c.id, Funnel()).__dict__,
        )  # fmt: skip
        rows.append(ThemeCampaignFigures(c, title_of(c.content, c.default_language), f, c.budget_spent))
        totals.impressions += f.impressions
        totals.clicks += f.clicks
        totals.reach += f.reach
        totals.clickers += f.clickers
        for kind, n, face, amount in (
            ("joined", f.joined, 0, 0),
            ("completed", f.completed, 0, 0),
            ("issued", f.vouchers_issued, f.face_value_issued, 0),
            ("redeemed", f.vouchers_redeemed, f.face_value_redeemed, f.order_amount),
        ):
            totals.add(kind, n, face, amount)
    return ThemeAnalytics(theme, r, rows, totals, sum(c.budget_spent for c in campaigns))
