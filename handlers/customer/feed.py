"""The discovery feed, the home page's sections, and impression/click tracking."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field, model_validator

from handlers.customer import feed_cards
from handlers.customer.feed_schemas import FeedOut, SectionsOut
from server.access import CUSTOMER
from server.keys import EXPERIMENTS, FEED, JOURNEY
from server.routing import RouteTable, principal_of
from services.analytics import tracking
from services.core import Body, Id, Out, Query, errors, pick_language
from services.feed import Ranking, decode_offset, encode_offset, live_limits

routes = RouteTable()

REASON_LANGUAGES = ("zh-CN", "en")


class _Where(Query):
    store_id: Id | None = Field(
        default=None, description="only campaigns running at this store (and distances from it)"
    )
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def both_or_neither(self) -> _Where:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("send lat and lng together")
        return self


class FeedQuery(_Where):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=50)


class SectionsQuery(_Where):
    limit: int = Field(default=6, ge=1, le=20, description="campaigns per section")


class TrackEventIn(Body):
    type: Literal["impression", "click"]
    campaign_id: Id
    section: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[a-z_]+$")


class TrackIn(Body):
    events: list[TrackEventIn] = Field(min_length=1, max_length=100)


class TrackOut(Out):
    accepted: int
    ignored: int = Field(description="events naming an unknown campaign")


async def _ranking(request: web.Request, query: _Where) -> Ranking:
    language = pick_language(request.headers.get("Accept-Language"), REASON_LANGUAGES, "zh-CN")
    return await request.app[FEED].ranking_for(
        principal_of(request).id, language, datetime.now(UTC), store_id=query.store_id, lat=query.lat, lng=query.lng
    )


@routes.add(
    "GET", "/api/v1/feed", access=CUSTOMER, tags=("feed",), query=FeedQuery, response=FeedOut,
    summary="Campaigns you may see now, ranked for you, each with its reasons (teasers marked, not joinable)",
    errors=(errors.UnknownStore,),
)  # fmt: skip
async def get_feed(request: web.Request, query: FeedQuery) -> web.Response:
    offset = decode_offset(query.cursor)
    ranking = await _ranking(request, query)
    # Reasons and texts only for the page shown: the whole ranking needs scores alone.
    nxt = encode_offset(offset + query.limit) if offset + query.limit < len(ranking) else None
    chosen = ranking.page(offset, query.limit)
    # Experiments: a first sight of a card is an exposure, and a held-out customer does
    # not see the campaign (the page is then one card short; the cursor is unchanged).
    hidden = await request.app[EXPERIMENTS].hidden(
        principal_of(request).id, (s.id for s in chosen), "feed", datetime.now(UTC)
    )
    if hidden:
        chosen = [s for s in chosen if s.id not in hidden]
    # Live seats and budgets of the campaigns shown, not the index's cached counts: a full
    # one, or one whose budget is spent, is not joinable, as its page says (issue 14 item
    # 2). Its place stays: see docs/feed.md.
    live = await live_limits(request.app[FEED].redis, chosen)
    body = feed_cards.page_json(ranking, chosen, nxt, request.headers.get("Accept-Language"), live)
    return _json(body)


def _json(body: bytes) -> web.Response:
    """An answer written by feed_cards (see there: the schemas, without their models)."""
    return web.Response(body=body, content_type="application/json")


@routes.add(
    "GET", "/api/v1/feed/sections", access=CUSTOMER, tags=("feed",), query=SectionsQuery, response=SectionsOut,
    summary="The home page: recommended, ending soon, near you, themed", errors=(errors.UnknownStore,),
)  # fmt: skip
async def get_sections(request: web.Request, query: SectionsQuery) -> web.Response:
    ranking = await _ranking(request, query)
    chosen = ranking.sections(query.limit)
    hidden = await request.app[EXPERIMENTS].hidden(  # as get_feed
        principal_of(request).id, (s.id for s in chosen.shown()), "sections", datetime.now(UTC)
    )
    if hidden:
        chosen = dataclasses.replace(
            chosen,
            recommended=[s for s in chosen.recommended if s.id not in hidden],
            ending_soon=[s for s in chosen.ending_soon if s.id not in hidden],
            near_you=[s for s in chosen.near_you if s.id not in hidden],
            themed=[(t, name, [s for s in items if s.id not in hidden]) for t, name, items in chosen.themed],
        )
    live = await live_limits(request.app[FEED].redis, chosen.shown())  # as get_feed
    accept = request.headers.get("Accept-Language")
    return _json(feed_cards.sections_json(ranking, query.limit, accept, live, chosen))


@routes.add(
    "POST", "/api/v1/track", access=CUSTOMER, tags=("feed",), body=TrackIn, response=TrackOut, status=202,
    summary="Report a batch of impressions and clicks (1-100), for reach and click-through",
)  # fmt: skip
async def track(request: web.Request, body: TrackIn) -> TrackOut:
    journey = request.app[JOURNEY]
    known = await journey.catalog.get_many([e.campaign_id for e in body.events])
    seen = [tracking.Seen(e.type, e.campaign_id, e.section) for e in body.events if e.campaign_id in known]
    if seen:
        await tracking.record(journey.redis, principal_of(request).id, seen, datetime.now(UTC))
    return TrackOut(accepted=len(seen), ignored=len(body.events) - len(seen))
