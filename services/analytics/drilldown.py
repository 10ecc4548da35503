"""Did it pay: a campaign's ROI and the drill-down of its funnel, redemptions, attributed
revenue and ROI by store, channel, tier, lifecycle stage or theme (issue 18).

The figures (docs/analytics.md#roi-and-drill-down), over a range of UTC days:

- joined / completed: participations, on joined_at / completed_at
- vouchers issued (and their face value), on issued_at
- vouchers redeemed (not reversed), their face value and their **cost**: what the
  customer was actually given off, on the redemption's created_at. A percent coupon's
  cost is ``order_amount * percent_off / 100`` capped at its face value (the face value
  when the till recorded no order amount); every other kind's is its face value.
- attributed orders and revenue: services.activity.attribution's rows whose purchase was
  not refunded, on the purchase's occurred_at
- points: the net points the campaign gave (rewards less claw-backs), on the ledger
  line's created_at; **points cost** = points × ``points_cost_fen`` (a setting)
- cost = voucher cost + points cost; **roi** = (attributed revenue - cost) / cost,
  4 places; null with ``roi_reason`` ``no_cost`` when cost is 0.

A dimension is read where each fact lives: ``store`` from redemptions and attributions
(joins, vouchers issued and points have no store: their figures fall under a null key);
``tier`` and ``stage`` from the customer's tier and lifecycle stage *now* (no history is
kept per fact); ``theme`` and ``channel`` from the campaign (a campaign in two channels
counts under both, so channel rows do not add up to the total); ``segment`` from the
saved segments' rules evaluated now (one row per segment, up to MAX_SEGMENTS, one
statement each; a customer in two segments counts in both). One SQL statement per call
otherwise (UNION ALL of one GROUP BY per fact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal, get_args

from tortoise import connections

from models.audience import Segment
from models.campaigns import Campaign, Theme
from models.stores import Store
from services.analytics.funnel import DateRange, _bound, campaign_period, resolve_range
from services.audience import rules as audience
from services.campaigns import title_of
from services.core import Params, dialect_of, errors

Dimension = Literal["store", "channel", "segment", "tier", "stage", "theme"]
DIMENSIONS: tuple[str, ...] = get_args(Dimension)

#: A drill-down by segment runs one statement per saved segment: at most this many.
MAX_SEGMENTS = 50

#: Points ledger reasons a campaign's points cost counts (a reward, and its claw-back).
POINTS_REASONS = ("campaign_reward", "reward_clawback")


@dataclass
class Figures:
    joined: int = 0
    completed: int = 0
    vouchers_issued: int = 0
    face_value_issued: int = 0
    vouchers_redeemed: int = 0
    face_value_redeemed: int = 0
    voucher_cost: int = 0
    attributed_orders: int = 0
    attributed_revenue: int = 0
    points: int = 0
    points_cost: int = 0

    @property
    def cost(self) -> int:
        return self.voucher_cost + self.points_cost

    @property
    def roi(self) -> float | None:
        return None if self.cost == 0 else round((self.attributed_revenue - self.cost) / self.cost, 4)

    @property
    def roi_reason(self) -> str | None:
        """Why ``roi`` is null (``no_cost``: nothing was spent, the ratio has no value)."""
        return "no_cost" if self.cost == 0 else None

    def add(self, kind: str, n: int, v1: int, v2: int, fen_per_point: int) -> None:
        if kind == "joined":
            self.joined += n
        elif kind == "completed":
            self.completed += n
        elif kind == "issued":
            self.vouchers_issued += n
            self.face_value_issued += v1
        elif kind == "redeemed":
            self.vouchers_redeemed += n
            self.face_value_redeemed += v1
            self.voucher_cost += v2
        elif kind == "attributed":
            self.attributed_orders += n
            self.attributed_revenue += v1
        else:
            self.points += v1
            self.points_cost += v1 * fen_per_point

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "cost": self.cost, "roi": self.roi, "roi_reason": self.roi_reason}


@dataclass
class Group:
    key: str | None
    label: str | None
    figures: Figures = field(default_factory=Figures)


#: A percent coupon's discount given, capped at its face value (fen).
_COST = (
    "CASE WHEN t.kind = 'percent' AND x.order_amount IS NOT NULL AND t.percent_off IS NOT NULL "
    "AND x.order_amount * t.percent_off / 100 < x.face_value THEN x.order_amount * t.percent_off / 100 "
    "ELSE x.face_value END"
)


def _dimension(by: Dimension | None, has_store: bool) -> tuple[str, str]:
    """The join and the key expression of a dimension over a fact table aliased ``x``."""
    if by is None or by == "segment":  # segment: one statement per segment (members_of)
        return "", "NULL"
    if by == "store":
        return "", "x.store_id" if has_store else "NULL"
    if by == "tier":
        return " JOIN customers cu ON cu.id = x.customer_id", "cu.membership_tier"
    if by == "stage":
        return " LEFT JOIN customer_facts cf ON cf.customer_id = x.customer_id", "cf.lifecycle_stage"
    if by == "theme":
        return " JOIN campaigns ca ON ca.id = x.campaign_id", "ca.theme_id"
    return (
        " LEFT JOIN campaign_labels cl ON cl.campaign_id = x.campaign_id AND cl.kind = 'channel'",
        "cl.value",
    )


def _sql(p: Params, campaign_id: int | None, by: Dimension | None, r: DateRange, members: str | None) -> str:
    lo, hi = p(_bound(p.dialect, r.start)), p(_bound(p.dialect, r.end))
    scope = "x.campaign_id IS NOT NULL" if campaign_id is None else f"x.campaign_id = {p(campaign_id)}"
    if members is not None:
        scope += f" AND x.customer_id IN ({members})"

    def part(
        kind: str, table: str, column: str, v1: str = "0", v2: str = "0", *, extra_join: str = "", where: str = "",
        has_store: bool = False,
    ) -> str:  # fmt: skip
        join, key = _dimension(by, has_store)
        # CAST: one text key for every dimension and fact (ids and labels alike).
        k = f"CAST({key} AS TEXT)" if key != "NULL" else "NULL"
        # No dimension: one aggregate row (zeros when nothing matched).
        group = f" GROUP BY {k}" if k != "NULL" else ""
        return (
            f"SELECT '{kind}' AS kind, {k} AS k, COUNT(*) AS n, {v1} AS v1, {v2} AS v2 FROM {table} x{extra_join}"
            f"{join} WHERE {scope} AND x.{column} >= {lo} AND x.{column} < {hi}{where}{group}"
        )

    reasons = ", ".join(p(reason) for reason in POINTS_REASONS)
    return " UNION ALL ".join(
        (
            part("joined", "participations", "joined_at"),
            part("completed", "participations", "completed_at"),
            part("issued", "vouchers", "issued_at", "COALESCE(SUM(x.face_value), 0)"),
            part(
                "redeemed", "redemptions", "created_at", "COALESCE(SUM(x.face_value), 0)", f"COALESCE(SUM({_COST}), 0)",
                extra_join=" JOIN coupon_templates t ON t.id = x.template_id", where=" AND x.reversed_at IS NULL",
                has_store=True,
            ),
            part(
                "attributed", "attributions", "occurred_at", "COALESCE(SUM(x.amount), 0)",
                extra_join=" JOIN integration_events e ON e.id = x.event_id", where=" AND e.status = 'applied'",
                has_store=True,
            ),
            part(
                "points", "points_entries", "created_at", "COALESCE(SUM(x.delta), 0)",
                where=f" AND x.reason IN ({reasons})",
            ),
        )
    )  # fmt: skip


async def figures_by(
    *, campaign_id: int | None, by: Dimension | None, r: DateRange, fen_per_point: int,
    members: tuple[str, list[Any]] | None = None,
) -> dict[str | None, Figures]:  # fmt: skip
    """The figures per key of ``by`` (one entry, key None, when ``by`` is None or
    ``segment``), for one campaign or all (``campaign_id`` None), of the customers
    ``members`` selects (a statement and its parameters, numbered from 1: see
    services.audience.rules.members_query) or all. Keys with nothing are absent."""
    p = Params(dialect_of(connections.get("default")))
    if members is not None:
        p.values.extend(members[1])  # the members' placeholders come first; ours follow
    sql = _sql(p, campaign_id, by, r, members[0] if members is not None else None)
    _, rows = await connections.get("default").execute_query(sql, p.values)
    out: dict[str | None, Figures] = {}
    for row in rows:
        key = None if row["k"] is None else str(row["k"])
        # PostgreSQL answers SUM over bigint as numeric: int() takes both.
        out.setdefault(key, Figures()).add(
            str(row["kind"]), int(row["n"]), int(row["v1"]), int(row["v2"]), fen_per_point
        )
    return out


# --------------------------------------------------------------------------- entry points

#: The drill-down's default range when no campaign bounds it: the last 30 days.
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class CampaignRoi:
    campaign: Campaign
    title: str | None
    range: DateRange
    figures: Figures


async def campaign_roi(
    campaign_id: int, date_from: date | None, date_to: date | None, today: date, *, fen_per_point: int
) -> CampaignRoi:
    """The campaign's ROI and its inputs over the range (default: its period up to
    today). 404 for an unknown campaign."""
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise errors.NotFound(f"no campaign {campaign_id}")
    r = resolve_range(date_from, date_to, campaign_period(campaign, today))
    found = await figures_by(campaign_id=campaign.id, by=None, r=r, fen_per_point=fen_per_point)
    return CampaignRoi(campaign, title_of(campaign.content, campaign.default_language), r, found.get(None, Figures()))


@dataclass(frozen=True)
class Drilldown:
    campaign_id: int | None
    by: Dimension
    range: DateRange
    groups: list[Group]
    total: Figures


async def drilldown(
    *, campaign_id: int | None, by: Dimension, date_from: date | None, date_to: date | None, today: date,
    fen_per_point: int,
) -> Drilldown:  # fmt: skip
    """The figures per ``by`` key over the range (default: the campaign's period up to
    today, or the last DEFAULT_DAYS days over all campaigns), biggest attributed revenue
    first, then by key (null last); and the total (by no dimension: channel rows may
    overlap). 404 for an unknown campaign, 422 for a bad range."""
    if campaign_id is not None:
        campaign = await Campaign.get_or_none(id=campaign_id)
        if campaign is None:
            raise errors.NotFound(f"no campaign {campaign_id}")
        default = campaign_period(campaign, today)
    else:
        default = DateRange(today - timedelta(days=DEFAULT_DAYS - 1), today)
    r = resolve_range(date_from, date_to, default)
    if by == "segment":
        found, labels = await _by_segment(campaign_id, r, fen_per_point)
    else:
        found = await figures_by(campaign_id=campaign_id, by=by, r=r, fen_per_point=fen_per_point)
        labels = await _labels(by, [k for k in found if k is not None])
    total = (await figures_by(campaign_id=campaign_id, by=None, r=r, fen_per_point=fen_per_point)).get(None, Figures())
    groups = [Group(k, labels.get(k, k) if k is not None else None, f) for k, f in found.items()]
    groups.sort(key=lambda g: (-g.figures.attributed_revenue, g.key is None, g.key or ""))
    return Drilldown(campaign_id, by, r, groups, total)


async def _by_segment(
    campaign_id: int | None, r: DateRange, fen_per_point: int
) -> tuple[dict[str | None, Figures], dict[str, str]]:
    """Each saved segment's figures (its members now; keyed by segment id), and their names."""
    dialect = dialect_of(connections.get("default"))
    saved = await Segment.all().order_by("name").limit(MAX_SEGMENTS + 1).values("id", "name", "rule")
    if len(saved) > MAX_SEGMENTS:
        raise errors.AnalyticsTooBroad(
            f"more than {MAX_SEGMENTS} saved segments: drill down by another dimension",
            details={"segments": len(saved), "max_segments": MAX_SEGMENTS},
        )
    found: dict[str | None, Figures] = {}
    for segment in saved:
        members = await audience.members_query(segment["rule"], dialect)
        figures = await figures_by(campaign_id=campaign_id, by=None, r=r, fen_per_point=fen_per_point, members=members)
        found[str(segment["id"])] = figures.get(None, Figures())
    return found, {str(segment["id"]): str(segment["name"]) for segment in saved}


async def _labels(by: Dimension, keys: list[str]) -> dict[str, str]:
    """Names for ids (stores, themes); other dimensions' keys are their own labels."""
    ids = [int(k) for k in keys if k.isdigit()]
    if by == "store" and ids:
        return {str(i): n for i, n in await Store.filter(id__in=ids).values_list("id", "name")}
    if by == "theme" and ids:
        return {str(i): n for i, n in await Theme.filter(id__in=ids).values_list("id", "name")}
    return {}
