"""The campaign calendar: for each UTC day of a bounded window (a month, a week, at most
MAX_WINDOW_DAYS days), how many campaigns run, start and end, the first few of each, a
paginated list of every campaign in the window, and the mutually exclusive pairs that run
together in it.

Why bounded: the first calendar listed every campaign on every day of a month in full; with
thousands of campaigns live at once the answer grew to megabytes and the page never drew.
Now each day carries counts and at most ``per_day`` entries, the full list is paged, and
the exclusive clashes come in one call for the window instead of one per campaign.

Which campaigns appear: every state but ``draft``, ``rejected`` and ``archived``. A
calendar plans what customers will see; drafts (often abandoned experiments) and
rejected campaigns would crowd it, and archived ones are history. Everything in review or
later (``in_review``, ``returned``, ``approved``, ``scheduled``, ``active``, ``paused``,
``ended``) is shown with its status, so the page can tell a firm plan from a pending one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from models.campaigns import CAMPAIGN_STATUSES, Campaign, CampaignStore, ExclusivityLink
from services.core import Params, dialect_of, errors, json_array_has, utc_day, utc_last_day

#: States a campaign is left out of the calendar in (see the module's docstring).
HIDDEN_STATUSES = ("draft", "rejected", "archived")
#: The others, named in SQL as a list (an IN list can use the (status, time) indexes; NOT IN cannot).
SHOWN_STATUSES = tuple(s for s in CAMPAIGN_STATUSES if s not in HIDDEN_STATUSES)

#: The longest window one request may ask for, in days (two months and a bit: a month grid
#: or a week never needs more).
MAX_WINDOW_DAYS = 62

#: The most exclusive clashes one window answers (``truncated`` says when there were more).
MAX_CLASHES = 500

#: The title is looked up in the campaign's own default language first, then these.
_FALLBACK_LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True)
class CalendarEntry:
    id: int
    type: str
    status: str
    title: str | None
    starts_at: datetime
    ends_at: datetime


@dataclass
class CalendarDay:
    """``running``: campaigns live at some moment of the day; ``starting`` and ``ending``:
    those among them whose first or last moment falls on the day. Each list holds at most
    the window's ``per_day`` first entries (by start, then id); the counts are of all."""

    date: date
    running: list[CalendarEntry] = field(default_factory=list)
    starting: list[CalendarEntry] = field(default_factory=list)
    ending: list[CalendarEntry] = field(default_factory=list)
    running_count: int = 0
    starting_count: int = 0
    ending_count: int = 0


@dataclass(frozen=True)
class CalendarWindow:
    first: date
    last: date
    days: list[CalendarDay]
    #: One page of every campaign in the window, by start then id.
    campaigns: list[CalendarEntry]
    next_cursor: str | None


@dataclass(frozen=True)
class Clash:
    """Two campaigns marked mutually exclusive that run together (in time and scope) on
    the days ``first`` to ``last`` of the window. ``low.id < high.id``."""

    low: CalendarEntry
    high: CalendarEntry
    first: date
    last: date
    shared_store_ids: list[int] | None  # None: both run in every store
    shared_categories: list[str]


class _Row(NamedTuple):
    """A campaign of the window as the calendar needs it: no content (the heavy column).
    A tuple, not a dataclass: up to ``WALK_PAGE`` are made per statement. ``starts_at`` and
    ``ends_at`` as the driver gives them (ISO text on SQLite): converted only for the
    entries answered (``_instant``)."""

    id: int
    type: str
    status: str
    starts_at: Any
    ends_at: Any


class _Linked(NamedTuple):
    """A campaign with an exclusivity link, for the clashes (few per window)."""

    id: int
    type: str
    status: str
    starts_at: datetime
    ends_at: datetime
    all_stores: bool
    raw_categories: Any  # JSON text or a decoded list

    @property
    def categories(self) -> list[str]:
        return [str(c) for c in (_json(self.raw_categories) or [])]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _instant(value: Any) -> datetime:
    """A timestamp as the driver gives it (asyncpg: a datetime; SQLite: ISO text) in UTC."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _invalid(field_name: str, message: str, kind: str) -> errors.AppError:
    return errors.ValidationFailed(
        f"query {field_name}: {message}", details={"errors": [{"field": field_name, "message": message, "type": kind}]}
    )


def resolve_window(*, month: str | None, date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """The window's first and last UTC day (inclusive): a month ("YYYY-MM", already
    checked for shape and year) or ``date_from``..``date_to``, ordered and at most
    MAX_WINDOW_DAYS days. Anything else is a 422 naming the field."""
    if month is not None:
        if date_from is not None or date_to is not None:
            raise _invalid("month", "give either month or date_from and date_to, not both", "window_conflict")
        start, end = month_bounds(int(month[:4]), int(month[5:]))
        return start.date(), end.date() - timedelta(days=1)
    if date_from is None or date_to is None:
        field_name = (
            "month" if date_from is None and date_to is None else ("date_to" if date_to is None else "date_from")
        )
        raise _invalid(field_name, "give month, or both date_from and date_to", "missing")
    if date_from > date_to:
        raise _invalid("date_from", "is after date_to", "date_order")
    if (date_to - date_from).days + 1 > MAX_WINDOW_DAYS:
        raise _invalid("date_to", f"the window is longer than {MAX_WINDOW_DAYS} days", "window_too_long")
    return date_from, date_to


def _encode_cursor(entry: CalendarEntry) -> str:
    raw = json.dumps({"after": [entry.starts_at.astimezone(UTC).isoformat(), entry.id]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """The (starts_at, id) to continue after; a forged cursor is a 422."""
    if not cursor:
        return None
    try:
        starts, last_id = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))["after"]
        if isinstance(last_id, int) and not isinstance(last_id, bool) and isinstance(starts, str):
            return datetime.fromisoformat(starts).astimezone(UTC), last_id
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    raise _invalid("cursor", "invalid cursor", "invalid_cursor")


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC. Precondition: 1 <= month <= 12."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return start, end


def title_of(content: dict[str, Any], default_language: str) -> str | None:
    """The title in the default language, else in zh-CN, en, then any language that has one."""
    languages = [default_language, *_FALLBACK_LANGUAGES, *sorted(content)]
    for language in languages:
        texts = content.get(language)
        if isinstance(texts, dict) and isinstance(texts.get("title"), str) and texts["title"]:
            return texts["title"]
    return None


def _first_day(starts_at: datetime) -> date:
    return starts_at.astimezone(UTC).date()


def _last_day(starts_at: datetime, ends_at: datetime) -> date:
    # [starts_at, ends_at) is half-open: a campaign ending at midnight last runs the day
    # before, and that is the day it is shown "ending" (so "ending" is always a running
    # day). Never before its first day, even for a degenerate empty interval.
    last_instant = max(starts_at, ends_at - timedelta(microseconds=1))
    return last_instant.astimezone(UTC).date()


def _window_query(first: date, last: date, *, store_id: int | None, campaign_type: str | None) -> QuerySet[Campaign]:
    """Shown campaigns whose [starts_at, ends_at) overlaps the window's UTC days (one range
    scan), for all stores or the given one, of the given type."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    rows = Campaign.filter(starts_at__lt=end, ends_at__gt=start).exclude(status__in=HIDDEN_STATUSES)
    if campaign_type is not None:
        rows = rows.filter(type=campaign_type)
    if store_id is not None:
        linked = CampaignStore.filter(store_id=store_id).values("campaign_id")
        rows = rows.filter(Q(all_stores=True) | Q(id__in=Subquery(linked)))
    return rows


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first instant, the instant after the last day) of the window's UTC days."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return start, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


def _filters(p: Params, *, store_id: int | None, campaign_type: str | None, channel: str | None) -> str:
    """The calendar's filters as SQL on ``campaigns``: shown statuses, and the type, store
    and channel asked for (``_window_query``'s, and the channel)."""
    where = [p.one_of("status", SHOWN_STATUSES)]
    if campaign_type is not None:
        where.append(f"type = {p(campaign_type)}")
    if store_id is not None:
        where.append(f"(all_stores OR id IN (SELECT campaign_id FROM campaign_stores WHERE store_id = {p(store_id)}))")
    if channel is not None:
        where.append(json_array_has(p, "channels", channel))
    return " AND ".join(where)


def _scope(
    p: Params, first: date, last: date, *, store_id: int | None, campaign_type: str | None, channel: str | None
) -> str:
    """The window's shown campaigns in its filters: [starts_at, ends_at) overlaps the
    window's days (datetimes as parameters: the driver writes them as the ORM does)."""
    start, end = _bounds(first, last)
    filters = _filters(p, store_id=store_id, campaign_type=campaign_type, channel=channel)
    return f"starts_at < {p(end)} AND ends_at > {p(start)} AND {filters}"


async def _day_counts(
    conn: BaseDBAsyncClient, p: Params, scope: str, first: date, last: date
) -> tuple[int, dict[str, int], dict[str, int]]:
    """One statement, counted by the database: how many of the window's campaigns started
    before it, and per UTC day ('YYYY-MM-DD'; days without any absent) how many start on
    it and how many have their last moment on it."""
    start, end = _bounds(first, last)
    _, found = await conn.execute_query(
        f"SELECT 's' AS kind, {utc_day(p.dialect, 'starts_at')} AS d, COUNT(*) AS n FROM campaigns"
        f" WHERE {scope} AND starts_at >= {p(start)} GROUP BY 2"
        f" UNION ALL SELECT 'e' AS kind, {utc_last_day(p.dialect, 'starts_at', 'ends_at')} AS d, COUNT(*) AS n"
        f" FROM campaigns WHERE {scope} AND ends_at <= {p(end)} GROUP BY 2"
        f" UNION ALL SELECT 'b' AS kind, '' AS d, COUNT(*) AS n FROM campaigns"
        f" WHERE {scope} AND starts_at < {p(start)}",
        p.values,
    )
    before, starting, ending = 0, dict[str, int](), dict[str, int]()
    for row in found:
        if row["kind"] == "b":
            before = int(row["n"])
        else:
            (starting if row["kind"] == "s" else ending)[str(row["d"])] = int(row["n"])
    return before, starting, ending


async def _day_lists(
    conn: BaseDBAsyncClient, p: Params, filters: str, days: list[date], per_day: int
) -> tuple[list[list[_Row]], list[list[_Row]]]:
    """For each day, the first ``per_day`` campaigns (by start then id) in ``filters`` starting
    on it and those whose last moment is on it: one statement of two small index-range reads
    per day (``ends_at`` in (day, next day]: a campaign ends after it starts, the spec refuses
    anything else; so a day's range alone puts a campaign in the window, and without the
    window's own bounds the planner takes the day's index range). Where one statement
    ranked the whole window with window functions, SQLite took 60-100 ms for 10,000
    campaigns; this takes a few."""
    parts = []
    limit = p(per_day)
    for offset, day in enumerate(days):
        day_start, day_end = _bounds(day, day)
        for kind, within in (
            ("s", f"starts_at >= {p(day_start)} AND starts_at < {p(day_end)}"),
            ("e", f"ends_at > {p(day_start)} AND ends_at <= {p(day_end)}"),
        ):
            parts.append(
                f"SELECT * FROM (SELECT '{kind}' AS kind, {offset} AS d, id, type, status, starts_at, ends_at"
                f" FROM campaigns WHERE {filters} AND {within} ORDER BY starts_at, id LIMIT {limit}) AS {kind}{offset}"
            )
    _, found = await conn.execute_query(" UNION ALL ".join(parts), p.values)
    starting: list[list[_Row]] = [[] for _ in days]
    ending: list[list[_Row]] = [[] for _ in days]
    for row in found:
        lists = starting if row["kind"] == "s" else ending
        lists[int(row["d"])].append(_Row(row["id"], row["type"], row["status"], row["starts_at"], row["ends_at"]))
    for rows in (*starting, *ending):
        rows.sort(key=lambda r: (_instant(r.starts_at), r.id))  # a union's order is the database's
    return starting, ending


class _Day(NamedTuple):
    """A row with its first and last UTC days as 'YYYY-MM-DD' text."""

    row: _Row
    first: str
    last: str


async def _rows_in_order(
    conn: BaseDBAsyncClient, p: Params, scope: str, *, after: tuple[Any, int] | None, limit: int
) -> list[_Day]:
    """The first ``limit`` campaigns of ``scope`` by start then id, after ``after`` (a
    start as the driver gives it or as a datetime, and an id), with their first and last
    UTC days ('YYYY-MM-DD') in the last two columns."""
    keyset = ""
    if after is not None:
        keyset = f" AND (starts_at > {p(after[0])} OR (starts_at = {p(after[0])} AND id > {p(after[1])}))"
    days = f"{utc_day(p.dialect, 'starts_at')} AS fd, {utc_last_day(p.dialect, 'starts_at', 'ends_at')} AS ld"
    _, found = await conn.execute_query(
        f"SELECT id, type, status, starts_at, ends_at, {days} FROM campaigns WHERE {scope}{keyset}"
        f" ORDER BY starts_at, id LIMIT {p(limit)}",
        p.values,
    )
    return [
        _Day(_Row(row["id"], row["type"], row["status"], row["starts_at"], row["ends_at"]), row["fd"], row["ld"])
        for row in found
    ]


async def _linked_rows(
    first: date, last: date, *, store_id: int | None, campaign_type: str | None, channel: str | None
) -> list[_Linked]:
    """The window's campaigns that have an exclusivity link (the others cannot clash: with
    10,000 in a window, reading them all was most of the overlaps' time), with
    ``all_stores`` and the categories, by start then id."""
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    scope = _scope(p, first, last, store_id=store_id, campaign_type=campaign_type, channel=channel)
    table = ExclusivityLink._meta.db_table
    _, found = await conn.execute_query(
        f"SELECT id, type, status, starts_at, ends_at, all_stores, categories FROM campaigns WHERE {scope}"
        f" AND (id IN (SELECT campaign_low_id FROM {table}) OR id IN (SELECT campaign_high_id FROM {table}))"
        " ORDER BY starts_at, id",
        p.values,
    )
    return [
        _Linked(
            row["id"], row["type"], row["status"], _instant(row["starts_at"]), _instant(row["ends_at"]),
            bool(row["all_stores"]), row["categories"],
        )
        for row in found
    ]  # fmt: skip


async def _titles(ids: set[int]) -> dict[int, str | None]:
    """The titles of these campaigns (a page's worth: the content column is read for them only)."""
    if not ids:
        return {}
    found = await Campaign.filter(id__in=sorted(ids)).values_list("id", "content", "default_language")
    return {row[0]: title_of(row[1] or {}, row[2]) for row in found}


def _entry(row: _Row | _Linked, titles: dict[int, str | None]) -> CalendarEntry:
    return CalendarEntry(
        id=row.id, type=row.type, status=row.status, title=titles.get(row.id), starts_at=_instant(row.starts_at),
        ends_at=_instant(row.ends_at),
    )  # fmt: skip


#: Rows one statement reads while the days' shown entries are picked (in start order, until
#: every list of every day is as full as it can be): a window of 10,000 campaigns is read
#: only as far as its lists need, usually the first page.
WALK_PAGE = 200


async def calendar_window(
    first: date,
    last: date,
    *,
    store_id: int | None = None,
    campaign_type: str | None = None,
    channel: str | None = None,
    per_day: int = 10,
    cursor: str | None = None,
    limit: int = 50,
) -> CalendarWindow:
    """The days ``first``..``last`` (UTC, inclusive) with counts and the first ``per_day``
    entries of each list, and one page of ``limit`` campaigns in the window after ``cursor``.
    Preconditions: the window came from ``resolve_window``; per_day and limit >= 1.

    The counts (``_day_counts``) and the starting and ending lists (``_day_lists``) come
    from the database; the running lists from reading the window in start order a page at
    a time until every day's list holds all it can (known from its count); the list page
    is its own keyset statement. Before, every campaign of the window was read and walked here: 10,000 rows
    and ~100 ms of the event loop per call with 10,000 campaigns in a month."""
    after = _decode_cursor(cursor)  # a forged cursor is a 422 before any statement
    conn = connections.get("default")
    dialect = dialect_of(conn)

    def scope(p: Params) -> str:
        return _scope(p, first, last, store_id=store_id, campaign_type=campaign_type, channel=channel)

    p = Params(dialect)
    before, starts, ends = await _day_counts(conn, p, scope(p), first, last)
    span = (last - first).days + 1
    days = [CalendarDay(date=first + timedelta(days=i)) for i in range(span)]
    keys = [day.date.isoformat() for day in days]
    offsets = {key: i for i, key in enumerate(keys)}
    count = before
    for day, key in zip(days, keys, strict=True):
        day.starting_count, day.ending_count = starts.get(key, 0), ends.get(key, 0)
        count += day.starting_count
        day.running_count = count
        count -= day.ending_count
    p = Params(dialect)
    filters = _filters(p, store_id=store_id, campaign_type=campaign_type, channel=channel)
    starting, ending = await _day_lists(conn, p, filters, [day.date for day in days], per_day)

    # The running lists: the window in start order, a page at a time, each row to the
    # days it runs on that still have room (next_open: a day's own offset while it has
    # room, else a later one), until every day holds all it can.
    running: list[list[_Row]] = [[] for _ in range(span)]
    wanted = sum(min(per_day, day.running_count) for day in days)
    next_open = list(range(span + 1))
    first_key, last_key = keys[0], keys[-1]
    position: tuple[Any, int] | None = None
    while wanted > 0:
        p = Params(dialect)
        page = await _rows_in_order(conn, p, scope(p), after=position, limit=WALK_PAGE)
        for row, own_first, own_last in page:
            # ISO days compare as text; a day outside the window is clipped to its edge.
            lo = 0 if own_first < first_key else offsets.get(own_first, span - 1)
            hi = span - 1 if own_last > last_key else offsets.get(own_last, 0)
            offset = _next_open(next_open, lo)
            while offset <= hi:
                running[offset].append(row)
                wanted -= 1
                if len(running[offset]) == per_day:
                    next_open[offset] = offset + 1
                offset = _next_open(next_open, offset + 1)
        if len(page) < WALK_PAGE:
            break
        position = (page[-1].row.starts_at, page[-1].row.id)

    p = Params(dialect)
    listed = await _rows_in_order(conn, p, scope(p), after=after, limit=limit + 1)
    shown = {d.row.id for d in listed[:limit]}
    shown.update(r.id for day_rows in running for r in day_rows)
    shown.update(r.id for rows in (*starting, *ending) for r in rows)
    titles = await _titles(shown)
    for offset, day in enumerate(days):
        day.running = [_entry(r, titles) for r in running[offset]]
        day.starting = [_entry(r, titles) for r in starting[offset]]
        day.ending = [_entry(r, titles) for r in ending[offset]]
    campaigns = [_entry(d.row, titles) for d in listed[:limit]]
    next_cursor = _encode_cursor(campaigns[-1]) if len(listed) > limit else None
    return CalendarWindow(first=first, last=last, days=days, campaigns=campaigns, next_cursor=next_cursor)


def _next_open(next_open: list[int], offset: int) -> int:
    """The first day at or after ``offset`` whose running list has room (``len`` - 1: none)."""
    root = offset
    while next_open[root] != root:
        root = next_open[root]
    while next_open[offset] != root:  # path compression
        next_open[offset], offset = root, next_open[offset]
    return root


def _shared_stores(a: set[int] | None, b: set[int] | None) -> tuple[bool, list[int] | None]:
    """Whether two store scopes meet (None: every store), and where: None for everywhere."""
    if a is None and b is None:
        return True, None
    shared = (b or set()) if a is None else (a if b is None else a & b)
    return bool(shared), sorted(shared)


async def window_clashes(
    first: date,
    last: date,
    *,
    store_id: int | None = None,
    campaign_type: str | None = None,
    channel: str | None = None,
) -> tuple[list[Clash], bool]:
    """The pairs marked mutually exclusive among the window's shown campaigns (same filters
    as ``calendar_window``; only linked campaigns are read) that run together in time and
    scope (a store in common, and a category in common when both name some: the rule of a
    campaign's overlaps route), with the days of the window they share; at most
    MAX_CLASHES, and whether there were more. Four queries whatever the window holds. Precondition: the window came from
    ``resolve_window``."""
    rows = {
        r.id: r
        for r in await _linked_rows(first, last, store_id=store_id, campaign_type=campaign_type, channel=channel)
    }
    if len(rows) < 2:
        return [], False

    # Only the low end is matched in SQL: with both ends as IN subqueries of the window,
    # SQLite probed every pair of window campaigns (10 s for 10,000 of them and 800 links).
    # A high end outside the window is not in ``rows`` and is skipped below.
    in_window = Subquery(_window_query(first, last, store_id=store_id, campaign_type=campaign_type).values("id"))
    links = await (
        ExclusivityLink.filter(campaign_low_id__in=in_window)
        .order_by("campaign_low_id", "campaign_high_id")
        .values_list("campaign_low_id", "campaign_high_id")
    )
    pairs: list[tuple[_Linked, _Linked, date, date]] = []
    for low_id, high_id in links:
        low, high = rows.get(low_id), rows.get(high_id)
        if low is None or high is None:
            continue  # outside the window, or left out by the channel filter
        if not (low.starts_at < high.ends_at and high.starts_at < low.ends_at):
            continue
        together_first = max(_first_day(max(low.starts_at, high.starts_at)), first)
        together_last = min(_last_day(max(low.starts_at, high.starts_at), min(low.ends_at, high.ends_at)), last)
        if together_first <= together_last:
            pairs.append((low, high, together_first, together_last))
    involved = {r.id for pair in pairs for r in pair[:2] if not r.all_stores}
    stores: dict[int, set[int]] = {i: set() for i in involved}
    if involved:
        for campaign_id, linked_store in await CampaignStore.filter(campaign_id__in=sorted(involved)).values_list(
            "campaign_id", "store_id"
        ):
            stores[campaign_id].add(linked_store)
    clashes: list[tuple[_Linked, _Linked, date, date, list[int] | None, list[str]]] = []
    for low, high, together_first, together_last in pairs:
        meet, shared_ids = _shared_stores(
            None if low.all_stores else stores[low.id], None if high.all_stores else stores[high.id]
        )
        if not meet:
            continue
        categories = sorted(set(low.categories) & set(high.categories))
        if low.categories and high.categories and not categories:
            continue
        clashes.append((low, high, together_first, together_last, shared_ids, categories))
    truncated = len(clashes) > MAX_CLASHES
    clashes = clashes[:MAX_CLASHES]
    titles = await _titles({r.id for c in clashes for r in c[:2]})
    return [
        Clash(
            low=_entry(low, titles),
            high=_entry(high, titles),
            first=a,
            last=b,
            shared_store_ids=shared_ids,
            shared_categories=categories,
        )
        for low, high, a, b, shared_ids, categories in clashes
    ], truncated
