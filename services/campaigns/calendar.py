"""The campaign calendar: for each UTC day of a month, the campaigns running, starting or ending.

Which campaigns appear: every state but ``draft``, ``rejected`` and ``archived``. A
calendar plans what customers will see; drafts (often abandoned experiments) and
rejected campaigns would crowd it, and archived ones are history. Everything in review or
later (``in_review``, ``returned``, ``approved``, ``scheduled``, ``active``, ``paused``,
``ended``) is shown with its status, so the page can tell a firm plan from a pending one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tortoise.expressions import Q, Subquery

from models.campaigns import Campaign, CampaignStore

#: States a campaign is left out of the calendar in (see the module's docstring).
HIDDEN_STATUSES = ("draft", "rejected", "archived")

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
    """``running``: every campaign live at some moment of the day; ``starting`` and
    ``ending``: those among them whose first or last moment falls on the day."""

    date: date
    running: list[CalendarEntry] = field(default_factory=list)
    starting: list[CalendarEntry] = field(default_factory=list)
    ending: list[CalendarEntry] = field(default_factory=list)


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


def _last_day(entry: CalendarEntry) -> date:
    # [starts_at, ends_at) is half-open: a campaign ending at midnight last runs the day
    # before, and that is the day it is shown "ending" (so "ending" is always a running
    # day). Never before its first day, even for a degenerate empty interval.
    last_instant = max(entry.starts_at, entry.ends_at - timedelta(microseconds=1))
    return last_instant.astimezone(UTC).date()


async def month_campaigns(
    start: datetime,
    end: datetime,
    *,
    store_id: int | None = None,
    campaign_type: str | None = None,
    channel: str | None = None,
) -> list[CalendarEntry]:
    """The campaigns whose [starts_at, ends_at) overlaps [start, end), in one query.

    ``store_id``: campaigns for all stores or linked to that store; ``channel``: those
    listing it (filtered here: a month holds few campaigns, and the list is JSON).
    """
    rows = Campaign.filter(starts_at__lt=end, ends_at__gt=start).exclude(status__in=HIDDEN_STATUSES)
    if campaign_type is not None:
        rows = rows.filter(type=campaign_type)
    if store_id is not None:
        linked = CampaignStore.filter(store_id=store_id).values("campaign_id")
        rows = rows.filter(Q(all_stores=True) | Q(id__in=Subquery(linked)))
    found = await rows.order_by("starts_at", "id").only(
        "id", "type", "status", "content", "default_language", "channels", "starts_at", "ends_at"
    )
    return [
        CalendarEntry(
            id=c.id,
            type=c.type,
            status=c.status,
            title=title_of(c.content or {}, c.default_language),
            starts_at=c.starts_at,
            ends_at=c.ends_at,
        )
        for c in found
        if channel is None or channel in (c.channels or [])
    ]


def lay_out(year: int, month: int, entries: list[CalendarEntry]) -> list[CalendarDay]:
    """Every day of the month with the entries on it. Entries keep their order."""
    start, end = month_bounds(year, month)
    days = [CalendarDay(date=(start + timedelta(days=i)).date()) for i in range((end - start).days)]
    for entry in entries:
        first = max(entry.starts_at.astimezone(UTC).date(), days[0].date)
        last = min(_last_day(entry), days[-1].date)
        for offset in range((first - days[0].date).days, (last - days[0].date).days + 1):
            day = days[offset]
            day.running.append(entry)
            if day.date == entry.starts_at.astimezone(UTC).date():
                day.starting.append(entry)
            if day.date == _last_day(entry):
                day.ending.append(entry)
    return days


async def month_calendar(
    year: int,
    month: int,
    *,
    store_id: int | None = None,
    campaign_type: str | None = None,
    channel: str | None = None,
) -> list[CalendarDay]:
    """The calendar of one month (UTC days). Precondition: 1 <= month <= 12."""
    start, end = month_bounds(year, month)
    entries = await month_campaigns(start, end, store_id=store_id, campaign_type=campaign_type, channel=channel)
    return lay_out(year, month, entries)
