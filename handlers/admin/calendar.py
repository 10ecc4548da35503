"""The campaign calendar, for any admin."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field, field_validator

from server.access import admin
from server.routing import RouteTable
from services.campaigns import CampaignType, Channel, calendar
from services.core import Day, Out, Query, errors

routes = RouteTable()

#: The largest id the database holds (BIGINT): a bigger one is a 422, not a driver error.
MAX_ID = 2**63 - 1


class WindowQuery(Query):
    month: str | None = Field(
        default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC days); or date_from and date_to",
        examples=["2026-12"],
    )  # fmt: skip
    date_from: Day | None = Field(
        default=None, description="first UTC day, YYYY-MM-DD (with date_to, instead of month)"
    )
    date_to: Day | None = Field(
        default=None,
        description=f"last UTC day, YYYY-MM-DD (inclusive); at most {calendar.MAX_WINDOW_DAYS} days",
    )
    store_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="campaigns for all stores or this one")
    type: CampaignType | None = None
    channel: Channel | None = None

    @field_validator("month")
    @classmethod
    def _supported_year(cls, value: str | None) -> str | None:
        # Four-digit years from 1970 keep SQLite's text-ordered timestamps comparable, and
        # 9998 leaves room for "the first day of the next month".
        if value is not None and not 1970 <= int(value[:4]) <= 9998:
            raise ValueError("the year must be from 1970 to 9998")
        return value

    def window(self) -> tuple[dt.date, dt.date]:
        return calendar.resolve_window(month=self.month, date_from=self.date_from, date_to=self.date_to)


class CalendarQuery(WindowQuery):
    per_day: int = Field(default=10, ge=1, le=50, description="entries listed per day and list (the counts are of all)")
    cursor: str | None = Field(default=None, max_length=200, description="the campaigns list's next page")
    limit: int = Field(default=50, ge=1, le=200, description="campaigns per page of the list")


class CalendarEntryOut(Out):
    id: int
    type: str
    status: str
    title: str | None = Field(description="in the default language, else another one; null if none has a title")


class CalendarDayOut(Out):
    date: dt.date
    running: list[CalendarEntryOut] = Field(description="campaigns live at some moment of the day (the first per_day)")
    starting: list[CalendarEntryOut] = Field(description="those among running that start this day (the first per_day)")
    ending: list[CalendarEntryOut] = Field(
        description="those among running whose last moment is this day (the first per_day)"
    )
    running_count: int = Field(description="all campaigns running this day")
    starting_count: int
    ending_count: int


class CalendarCampaignOut(CalendarEntryOut):
    starts_at: dt.datetime
    ends_at: dt.datetime


class CalendarOut(Out):
    month: str | None = Field(description="as asked; null when the window was given by date_from and date_to")
    date_from: dt.date
    date_to: dt.date
    days: list[CalendarDayOut]
    campaigns: list[CalendarCampaignOut] = Field(description="every campaign in the window by start then id, paginated")
    next_cursor: str | None


class ClashOut(Out):
    low: CalendarEntryOut = Field(description="the pair's campaign with the lower id")
    high: CalendarEntryOut
    date_from: dt.date = Field(description="the first day of the window both run on")
    date_to: dt.date = Field(description="the last day of the window both run on")
    shared_store_ids: list[int] | None = Field(description="null: both run in every store")
    shared_categories: list[str]


class ClashesOut(Out):
    date_from: dt.date
    date_to: dt.date
    items: list[ClashOut]
    truncated: bool = Field(description=f"more than {calendar.MAX_CLASHES} pairs: only the first are listed")


def _entry(e: calendar.CalendarEntry) -> CalendarEntryOut:
    return CalendarEntryOut(id=e.id, type=e.type, status=e.status, title=e.title)


def _entries(entries: list[calendar.CalendarEntry]) -> list[CalendarEntryOut]:
    return [_entry(e) for e in entries]


@routes.add(
    "GET", "/api/v1/admin/calendar", access=admin(), tags=("admin",), query=CalendarQuery, response=CalendarOut,
    errors=(errors.ValidationFailed,),
    summary=f"Each UTC day of a month or window (at most {calendar.MAX_WINDOW_DAYS} days) with counts and the first "
    "campaigns running, starting and ending (not draft, rejected, archived), and a page of the window's campaigns",
)  # fmt: skip
async def month_calendar(request: web.Request, query: CalendarQuery) -> CalendarOut:
    first, last = query.window()
    w = await calendar.calendar_window(
        first, last, store_id=query.store_id, campaign_type=query.type, channel=query.channel, per_day=query.per_day,
        cursor=query.cursor, limit=query.limit,
    )  # fmt: skip
    return CalendarOut(
        month=query.month,
        date_from=w.first,
        date_to=w.last,
        days=[
            CalendarDayOut(
                date=d.date,
                running=_entries(d.running),
                starting=_entries(d.starting),
                ending=_entries(d.ending),
                running_count=d.running_count,
                starting_count=d.starting_count,
                ending_count=d.ending_count,
            )
            for d in w.days
        ],
        campaigns=[
            CalendarCampaignOut(
                id=e.id, type=e.type, status=e.status, title=e.title, starts_at=e.starts_at, ends_at=e.ends_at
            )
            for e in w.campaigns
        ],
        next_cursor=w.next_cursor,
    )


@routes.add(
    "GET", "/api/v1/admin/calendar/overlaps", access=admin(), tags=("admin",), query=WindowQuery,
    response=ClashesOut, errors=(errors.ValidationFailed,),
    summary="The pairs of mutually exclusive campaigns shown in a month or window that run together there "
    "(in time and scope), with the days they share: one call for the whole calendar",
)  # fmt: skip
async def calendar_overlaps(request: web.Request, query: WindowQuery) -> ClashesOut:
    first, last = query.window()
    found, truncated = await calendar.window_clashes(
        first, last, store_id=query.store_id, campaign_type=query.type, channel=query.channel
    )
    return ClashesOut(
        date_from=first,
        date_to=last,
        items=[
            ClashOut(
                low=_entry(c.low),
                high=_entry(c.high),
                date_from=c.first,
                date_to=c.last,
                shared_store_ids=c.shared_store_ids,
                shared_categories=c.shared_categories,
            )
            for c in found
        ],
        truncated=truncated,
    )
