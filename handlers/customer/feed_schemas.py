"""The feed's answers (``GET /api/v1/feed`` and ``/api/v1/feed/sections``), declared for
the route table and the OpenAPI document; handlers/customer/feed_cards.py writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from services.core import Out


class ReasonOut(Out):
    code: str = Field(
        description="audience, interest, behaviour, store, distance, ending, popularity, joined, teaser, full"
    )
    text: str
    points: float = Field(description="what it added to the score (0 for teaser and full)")


class FeedItemOut(Out):
    id: int
    type: str
    phase: Literal["teaser", "running"]
    teaser: bool = Field(description="visible before its start: shown, not joinable")
    joinable: bool = Field(
        description="running, not joined yet and, when capped, not full (seats read live; the join itself checks "
        "the rest)"
    )
    joined: bool
    language: str
    title: str
    summary: str
    tags: list[str]
    theme_id: int | None
    banner_media_id: int | None
    banner_url: str | None = Field(description="where the banner is served (GET it), relative to this server")
    starts_at: datetime
    ends_at: datetime
    participants: int
    distance_km: float | None
    score: float
    reason: str | None = Field(description="the strongest reason, to show on the card")
    reasons: list[ReasonOut]


class FeedOut(Out):
    items: list[FeedItemOut]
    next_cursor: str | None


class ThemeSectionOut(Out):
    theme_id: int
    name: str
    items: list[FeedItemOut]


class SectionsOut(Out):
    recommended: list[FeedItemOut]
    ending_soon: list[FeedItemOut] = Field(description="running, ending within FEED_ENDING_SOON_DAYS, soonest first")
    near_you: list[FeedItemOut] = Field(description="with a store within FEED_NEAR_KM of lat/lng (or store_id)")
    themed: list[ThemeSectionOut] = Field(description="campaigns of a theme (seasonal), best theme first")
