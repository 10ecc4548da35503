"""The date ranges campaign analytics cover, and the funnel counted over them from the
database: joined, completed, vouchers issued and redeemed, per UTC day or per campaign.

Every figure is counted on the UTC day its event happened: joined on joined_at, completed
on completed_at, issued on the voucher's issued_at, redeemed on the redemption's
created_at (redemptions that were reversed are left out). One SQL statement per call
(GROUP BY day or campaign), whatever the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise import connections

from models.campaigns import Campaign
from services.core import Dialect, Params, dialect_of, errors, utc_day

#: The longest range one request may cover (tracking keeps about 400 days anyway).
MAX_RANGE_DAYS = 366
#: Campaigns that ran (or are set to run): those that never got past review are not in
#: the overview.
LIVE_STATUSES = ("scheduled", "active", "paused", "ended", "archived")


def invalid_query(field_name: str, message: str, kind: str) -> errors.AppError:
    """A 422 naming one query parameter, as request validation words it."""
    return errors.ValidationFailed(
        f"query {field_name}: {message}",
        details={"errors": [{"field": field_name, "message": message, "type": kind}]},
    )


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class DateRange:
    """UTC days, both ends included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the range."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)


def resolve_range(date_from: date | None, date_to: date | None, default: DateRange) -> DateRange:
    """The range asked for, a missing end taken from ``default``. A range given in full
    must be ordered and at most MAX_RANGE_DAYS long (422 naming the field); a range
    completed from the default is cut to that length on its defaulted side."""
    span = timedelta(days=MAX_RANGE_DAYS - 1)
    if date_from is not None and date_to is not None:
        if date_from > date_to:
            raise invalid_query("date_from", "is after date_to", "date_order")
        if date_to - date_from > span:
            raise invalid_query("date_to", f"the range is longer than {MAX_RANGE_DAYS} days", "range_too_long")
        return DateRange(date_from, date_to)
    if date_from is not None:
        return DateRange(date_from, min(max(default.last, date_from), date_from + span))
    if date_to is not None:
        return DateRange(max(min(default.first, date_to), date_to - span), date_to)
    return DateRange(max(default.first, default.last - span), default.last)


def campaign_period(campaign: Campaign, today: date) -> DateRange:
    """The campaign's days up to today (just today for one that has not started)."""
    last = min(campaign.ends_at.astimezone(UTC).date(), today)
    return DateRange(min(campaign.starts_at.astimezone(UTC).date(), last), last)


# --------------------------------------------------------------------------- SQL


def _bound(dialect: Dialect, moment: datetime) -> datetime | str:
    # On SQLite, compare with the bare day: every stored text of that day sorts after it
    # whichever separator (space or T) the writer used.
    return moment if dialect == "postgres" else moment.date().isoformat()


@dataclass(frozen=True)
class Counted:
    """What one funnel figure counts: rows of ``table`` whose ``column`` (the event's time)
    falls in the range, less those whose ``undone`` column is set (a reversal)."""

    table: str
    column: str
    undone: str | None = None

    def condition(self, lo: str, hi: str, alias: str = "") -> str:
        """The rows in [lo, hi) (parameter placeholders), columns prefixed by ``alias``."""
        at = f"{alias}{self.column}"
        kept = f" AND {alias}{self.undone} IS NULL" if self.undone else ""
        return f"{at} >= {lo} AND {at} < {hi}{kept}"


#: Each counted figure, declared once: the funnel's statements here and the overview's
#: ranking in SQL (reports.py) both derive their conditions from it.
COUNTED = {
    "joined": Counted("participations", "joined_at"),
    "completed": Counted("participations", "completed_at"),
    "issued": Counted("vouchers", "issued_at"),
    "redeemed": Counted("redemptions", "created_at", undone="reversed_at"),
}


def _funnel_sql(p: Params, scope: str, group: str, r: DateRange) -> str:
    """joined, completed, issued and redeemed rows (kind, key, n, face, amount) grouped by
    ``group`` (a column, or "day"), for the campaigns ``scope`` (a SQL condition on campaign_id)."""
    lo, hi = p(_bound(p.dialect, r.start)), p(_bound(p.dialect, r.end))

    def part(kind: str, face: str, amount: str) -> str:
        counted = COUNTED[kind]
        key = utc_day(p.dialect, counted.column) if group == "day" else group
        return (
            f"SELECT '{kind}' AS kind, {key} AS k, COUNT(*) AS n, {face} AS face, {amount} AS amount"
            f" FROM {counted.table} WHERE {scope} AND {counted.condition(lo, hi)} GROUP BY {key}"
        )

    return " UNION ALL ".join(
        (
            part("joined", "0", "0"),
            part("completed", "0", "0"),
            part("issued", "COALESCE(SUM(face_value), 0)", "0"),
            part("redeemed", "COALESCE(SUM(face_value), 0)", "COALESCE(SUM(order_amount), 0)"),
        )
    )


@dataclass
class Funnel:
    joined: int = 0
    completed: int = 0
    vouchers_issued: int = 0
    face_value_issued: int = 0
    vouchers_redeemed: int = 0
    face_value_redeemed: int = 0
    order_amount: int = 0

    def add(self, kind: str, n: int, face: int, amount: int) -> None:
        if kind == "joined":
            self.joined += n
        elif kind == "completed":
            self.completed += n
        elif kind == "issued":
            self.vouchers_issued += n
            self.face_value_issued += face
        else:
            self.vouchers_redeemed += n
            self.face_value_redeemed += face
            self.order_amount += amount


async def _run(sql: str, p: Params) -> list[tuple[str, Any, int, int, int]]:
    conn = connections.get("default")
    _, rows = await conn.execute_query(sql, p.values)
    # PostgreSQL answers SUM over bigint as numeric: int() takes both.
    return [(str(r["kind"]), r["k"], int(r["n"]), int(r["face"]), int(r["amount"])) for r in rows]


async def funnel_by_day(campaign_id: int, r: DateRange) -> dict[date, Funnel]:
    """The campaign's funnel per UTC day of the range (days with nothing are absent)."""
    p = Params(dialect_of(connections.get("default")))
    scope = f"campaign_id = {p(campaign_id)}"
    out: dict[date, Funnel] = {}
    for kind, key, n, face, amount in await _run(_funnel_sql(p, scope, "day", r), p):
        out.setdefault(date.fromisoformat(str(key)), Funnel()).add(kind, n, face, amount)
    return out


def live_in(p: Params, r: DateRange) -> str:
    """Campaigns live at some moment of the range (a SQL condition on ``campaigns``)."""
    statuses = ", ".join(p(s) for s in LIVE_STATUSES)
    lo, hi = p(_bound(p.dialect, r.start)), p(_bound(p.dialect, r.end))
    return f"status IN ({statuses}) AND starts_at < {hi} AND ends_at >= {lo} AND (ended_at IS NULL OR ended_at >= {lo})"


async def funnel_of_campaigns(campaign_ids: list[int], r: DateRange) -> dict[int, Funnel]:
    """The funnel of each of these campaigns over the range (one statement)."""
    if not campaign_ids:
        return {}
    p = Params(dialect_of(connections.get("default")))
    scope = f"campaign_id IN ({', '.join(p(int(i)) for i in campaign_ids)})"
    out: dict[int, Funnel] = {}
    for kind, key, n, face, amount in await _run(_funnel_sql(p, scope, "campaign_id", r), p):
        out.setdefault(int(key), Funnel()).add(kind, n, face, amount)
    return out
