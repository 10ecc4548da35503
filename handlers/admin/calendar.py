"""The campaign calendar, for any admin."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import Field, field_validator

from server.access import admin
from server.routing import RouteTable
from services.campaigns import CampaignType, Channel, calendar
from services.core import Out, Query

routes = RouteTable()

#: The largest id the database holds (BIGINT): a bigger one is a 422, not a driver error.
MAX_ID = 2**63 - 1


class CalendarQuery(Query):
    month: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC days)", examples=["2026-12"])
    store_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="campaigns for all stores or this one")
    type: CampaignType | None = None
    channel: Channel | None = None

    @field_validator("month")
    @classmethod
    def _supported_year(cls, value: str) -> str:
        # Four-digit years from 1970 keep SQLite's text-ordered timestamps comparable, and
        # 9998 leaves room for "the first day of the next month".
        if not 1970 <= int(value[:4]) <= 9998:
            raise ValueError("the year must be from 1970 to 9998")
        return value


class CalendarEntryOut(Out):
    id: int
    type: str
    status: str
    title: str | None = Field(description="in the default language, else another one; null if none has a title")


class CalendarDayOut(Out):
    date: dt.date
    running: list[CalendarEntryOut] = Field(description="campaigns live at some moment of the day")
    starting: list[CalendarEntryOut] = Field(description="those among running that start this day")
    ending: list[CalendarEntryOut] = Field(description="those among running whose last moment is this day")


class CalendarOut(Out):
    month: str
    days: list[CalendarDayOut]


def _entries(entries: list[calendar.CalendarEntry]) -> list[CalendarEntryOut]:
    return [CalendarEntryOut(id=e.id, type=e.type, status=e.status, title=e.title) for e in entries]


@routes.add(
    "GET", "/api/v1/admin/calendar", access=admin(), tags=("admin",), query=CalendarQuery, response=CalendarOut,
    summary="Each UTC day of a month with the campaigns running, starting and ending (not draft, rejected, archived)",
)  # fmt: skip
async def month_calendar(request: web.Request, query: CalendarQuery) -> CalendarOut:
    year, month = int(query.month[:4]), int(query.month[5:])
    days = await calendar.month_calendar(
        year, month, store_id=query.store_id, campaign_type=query.type, channel=query.channel
    )
    return CalendarOut(
        month=query.month,
        days=[
            CalendarDayOut(
                date=d.date, running=_entries(d.running), starting=_entries(d.starting), ending=_entries(d.ending)
            )
            for d in days
        ],
    )
