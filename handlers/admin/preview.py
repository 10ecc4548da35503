"""The customer's view of any campaign, for operators: what a given customer will see
before (and after) it is published. Shaped by the customer routes' own code: the
campaign page (handlers/customer/journey.py ``shape_page``), the feed card
(handlers/customer/feed_cards.py ``CardWriter``) and the join checks
(services.journey.participation), so the preview cannot drift from what customers get."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from aiohttp import web
from pydantic import Field

from handlers.customer.feed import REASON_LANGUAGES
from handlers.customer.feed_cards import CardWriter
from handlers.customer.feed_schemas import FeedItemOut
from handlers.customer.journey import CustomerCampaignPageOut, JoinRefusalOut, shape_page
from models.customers import Customer
from models.participations import Participation
from server.access import admin
from server.keys import FEED, JOURNEY
from server.routing import RouteTable, path_int
from services.campaigns import CampaignSnapshot
from services.core import Id, Out, Query, errors, pick_language
from services.feed import live_limits
from services.journey import participation as journey

routes = RouteTable()

#: The feed's channel: a campaign not offered there has no card.
CUSTOMER_CHANNEL = "miniprogram"


class PreviewQuery(Query):
    customer_id: Id = Field(description="whose view")
    lang: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="the customer's language, as an Accept-Language value (default: the campaign's default language)",
    )  # fmt: skip


class EligibilityOut(Out):
    visible_now: bool = Field(
        description="GET /api/v1/campaigns/{id} would show it to this customer now (published, shown from "
        "visible_from, and in its audience or joined)"
    )
    in_audience: bool = Field(description="the customer matches the audience rule (true when not targeted)")
    can_join: bool = Field(description="as the page says, for the campaign as published")
    reason: str | None = Field(description="why not (the page's join_refusal.reason): null when they can join")
    refusal: JoinRefusalOut | None


class CampaignPreviewOut(Out):
    campaign_id: int
    customer_id: int
    status: str = Field(description="the campaign's real state")
    as_published: bool = Field(
        description="true when the campaign is not (yet) shown to customers (a draft, in review, approved, or "
        "before visible_from): page and card show it as it will look once published, as at this moment"
    )
    eligibility: EligibilityOut
    page: CustomerCampaignPageOut = Field(description="the campaign page as GET /api/v1/campaigns/{id} shapes it")
    card: FeedItemOut | None = Field(
        description="its feed card as GET /api/v1/feed writes it (reasons in this customer's terms); null when the "
        "feed would not show it (hidden, not in the mini program, ended, or targeted at others)"
    )


def as_published(snap: CampaignSnapshot, now: datetime) -> CampaignSnapshot:
    """The snapshot as customers would see it if it were published now: scheduled
    (shown as a teaser from now) before its start, active after."""
    if snap.phase(now) is not None:
        return snap
    status = "scheduled" if now < snap.starts_at else "active"
    return dataclasses.replace(snap, status=status, visible_from=min(snap.shown_from, now))


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/preview", access=admin(), tags=("campaigns",), query=PreviewQuery,
    response=CampaignPreviewOut, errors=(errors.NotFound, errors.UnknownCustomer),
    summary="A customer's view of any campaign, draft included: the campaign page, the feed card, whether they "
    "may join and why not",
)  # fmt: skip
async def preview_campaign(request: web.Request, query: PreviewQuery) -> CampaignPreviewOut:
    j = request.app[JOURNEY]
    campaign_id = path_int(request, "id")
    if not await Customer.exists(id=query.customer_id):
        raise errors.UnknownCustomer(f"no customer {query.customer_id}", details={"field": "customer_id"})
    await j.sync_catalog()
    snap = await j.catalog.get(campaign_id)
    if snap is None:
        raise errors.NotFound(f"no campaign {campaign_id}")
    now = datetime.now(UTC)
    shown = as_published(snap, now)
    phase = shown.phase(now)
    assert phase is not None  # as_published shows it
    customer_id = query.customer_id
    participation = await Participation.get_or_none(campaign_id=snap.id, customer_id=customer_id)
    member = await journey.in_audience(snap, customer_id)
    refusal = None
    if participation is None:
        refusal = await journey.join_refusal(j, shown, customer_id, now, check_cap=True)
    language = pick_language(query.lang, list(snap.content), snap.default_language)
    page = await shape_page(j, shown, language, now, phase=phase, participation=participation, refusal=refusal)
    card = None
    if shown.visibility != "hidden" and CUSTOMER_CHANNEL in shown.channels:
        feed = request.app[FEED]
        reasons_in = pick_language(query.lang, REASON_LANGUAGES, "zh-CN")
        ranking = await feed.preview(shown, customer_id, reasons_in, now, member=member)
        chosen = ranking.page(0, 1)
        if chosen:
            live = await live_limits(feed.redis, chosen)
            card = FeedItemOut.model_validate(CardWriter(ranking, query.lang, live).card(chosen[0]))
    return CampaignPreviewOut(
        campaign_id=snap.id, customer_id=customer_id, status=snap.status, as_published=shown is not snap,
        eligibility=EligibilityOut(
            visible_now=snap.phase(now) is not None and (member or participation is not None), in_audience=member,
            can_join=page.can_join, reason=page.join_refusal.reason if page.join_refusal else None,
            refusal=page.join_refusal,
        ),
        page=page, card=card,
    )  # fmt: skip
