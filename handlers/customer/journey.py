"""The customer journey: a campaign's page, joining, progress, check-ins, points, badges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import GoalOut, PageQuery
from models.journey import CustomerBadge
from models.participations import Participation
from server.access import CUSTOMER
from server.keys import EXPERIMENTS, JOURNEY
from server.routing import RouteTable, json_response, path_int, principal_of
from services.activity import events as journey_events
from services.campaigns import CampaignSnapshot, Phase
from services.core import Out, errors, face_of, localized, pick_language
from services.journey import Journey, ProgressView, points
from services.journey import participation as journey
from services.stock import gate as stock

routes = RouteTable()


# --- schemas ------------------------------------------------------------------------


class StepOut(Out):
    at: datetime
    source: str = Field(description="purchase, visit, refund, checkin or referral")
    ref: str = Field(description="what caused it: event:<id>, refund:<id>, checkin:<day>, referral:<id>")
    delta: int
    value_after: int


class JourneyProgressOut(Out):
    campaign_id: int
    participation_id: int
    status: Literal["joined", "completed"]
    joined_at: datetime
    completed_at: datetime | None
    metric: str | None = Field(description="the goal metric; null: no goal (rewards on join)")
    value: int = Field(description="current value (fen for spend, days for checkin_streak)")
    target: int | None
    percent: int | None = Field(description="0-100; null without a goal")
    remaining: int | None = Field(description="what is left to reach the target; null without a goal")
    deadline: datetime = Field(description="when the goal window closes for this participant")
    history: list[StepOut] | None = Field(default=None, description="the steps that made the value (oldest first)")

    @classmethod
    def of(cls, view: ProgressView, *, with_history: bool) -> JourneyProgressOut:
        data = {k: v for k, v in view.__dict__.items() if k != "history"}
        history = [StepOut(**s.__dict__) for s in view.history] if with_history else None
        return cls(**data, history=history)


class CouponRewardOut(Out):
    id: int
    kind: str
    title: str
    face_value: int
    percent_off: int | None
    min_spend: int
    item_name: str | None
    total_stock: int
    stock_left: int
    per_user_limit: int
    grab_starts_at: datetime | None
    points_price: int | None = Field(description="points for one voucher (POST /api/v1/me/points/exchange)")
    how: Literal["grab", "join", "completion"] = Field(
        description="grab: grab it; join: one is granted on joining (and it can be grabbed); completion: granted "
        "when the goal is reached"
    )


class RewardsOut(Out):
    points: int
    badge: str | None = Field(description="the badge's key (null: no badge)")
    badge_name: str | None = Field(description="its display name in the page's language")
    badge_icon_media_id: int | None
    badge_icon_url: str | None = Field(description="where its icon is served (GET it), relative to this server")
    coupons: list[CouponRewardOut]
    granted_on: Literal["join", "completion"] | None = Field(
        description="when points, badge (and join/completion coupons) are granted; null: nothing is granted"
    )


class JoinRefusalOut(Out):
    code: str
    reason: str
    message: str
    details: dict[str, Any]


class CustomerCampaignPageOut(Out):
    id: int
    type: str
    status: str
    phase: Literal["teaser", "running", "paused", "ended"]
    language: str = Field(description="the language of the texts below")
    title: str
    summary: str
    benefits: str
    how_to_join: str
    terms: str
    tags: list[str]
    categories: list[str]
    theme_id: int | None
    banner_media_id: int | None
    banner_url: str | None = Field(description="where the banner is served (GET it), relative to this server")
    poster_media_id: int | None
    poster_url: str | None = Field(description="where the poster is served (GET it), relative to this server")
    visible_from: datetime | None
    starts_at: datetime
    ends_at: datetime
    redeem_until: datetime | None
    channels: list[str]
    store_ids: list[int] | None = Field(description="null: every store")
    goal: GoalOut | None
    rewards: RewardsOut
    participant_cap: int | None
    participants: int | None = Field(description="seats taken, for a capped campaign")
    can_join: bool
    join_refusal: JoinRefusalOut | None = Field(description="why the caller cannot join (null when they can)")
    participation: JourneyProgressOut | None = Field(description="the caller's progress, if joined")
    server_time: datetime


class JoinOut(Out):
    participation: JourneyProgressOut
    created: bool = Field(description="true on the first join (201); false when already joined (200)")


class MyCampaignOut(Out):
    campaign_id: int
    type: str
    title: str
    phase: str | None
    ends_at: datetime
    progress: JourneyProgressOut


class MyCampaignsQuery(PageQuery):
    status: Literal["joined", "completed"] | None = None


class MyCampaignsOut(Out):
    items: list[MyCampaignOut]
    next_cursor: str | None


class CheckInOut(Out):
    day: str
    streak: int
    created: bool = Field(description="false: already checked in today (200)")
    progress: list[dict[str, Any]] = Field(description="participations this check-in moved")


class PointsEntryOut(Out):
    id: int
    delta: int
    balance_after: int
    reason: str
    ref: str
    campaign_id: int | None
    created_at: datetime


class PointsOut(Out):
    balance: int
    items: list[PointsEntryOut]
    next_cursor: str | None


class BadgeOut(Out):
    badge: str = Field(description="the badge's key")
    campaign_id: int = Field(description="the campaign that granted it (its texts name and picture it)")
    earned_at: datetime
    language: str | None = Field(
        description="the language of name and icon (Accept-Language, as the campaign has it); null: the campaign "
        "no longer names this badge, so the key is shown"
    )
    name: str = Field(description="the display name in that language (the key when the campaign gives none)")
    icon_media_id: int | None
    icon_url: str | None = Field(description="where the icon is served (GET it), relative to this server")


class BadgesOut(Out):
    items: list[BadgeOut]


# --- helpers --------------------------------------------------------------------------


def _journey(request: web.Request) -> Journey:
    return request.app[JOURNEY]


def _language(request: web.Request, snap: CampaignSnapshot) -> str:
    return pick_language(request.headers.get("Accept-Language"), list(snap.content), snap.default_language)


def _coupon_how(snap: CampaignSnapshot) -> Literal["grab", "join", "completion"]:
    if snap.reward_coupons():
        return "completion"
    return "join" if snap.join_coupons() else "grab"


# --- routes ---------------------------------------------------------------------------


@routes.add(
    "GET", "/api/v1/campaigns/{id}", access=CUSTOMER, tags=("journey",), response=CustomerCampaignPageOut,
    summary="A campaign's page in the caller's language (Accept-Language): period, benefits, how to join, rewards "
    "with stock left, whether the caller can join (and why not), the caller's progress",
    errors=(errors.NotFound, errors.NotEligible, errors.ExperimentHoldout),
)  # fmt: skip
async def campaign_page(request: web.Request) -> CustomerCampaignPageOut:
    j = _journey(request)
    customer_id = principal_of(request).id
    now = datetime.now(UTC)
    snap = await journey.visible_snapshot(j, path_int(request, "id"), now)
    participation = await Participation.get_or_none(campaign_id=snap.id, customer_id=customer_id)
    refusal: errors.AppError | None = None
    if participation is None:
        # Targeted campaigns show only to their audience (and to those who joined).
        if not await journey.in_audience(snap, customer_id):
            raise journey.audience_refusal()
        # A first sight of the page is an exposure; the holdout sees no contact (those
        # who joined before the experiment keep their page).
        await request.app[EXPERIMENTS].check_contact(customer_id, snap.id, "page", now)
        refusal = await journey.join_refusal(j, snap, customer_id, now, check_cap=True, check_audience=False)
    return await shape_page(
        j, snap, _language(request, snap), now, phase=snap.phase(now),  # type: ignore[arg-type]  # visible_snapshot: never None
        participation=participation, refusal=refusal,
    )  # fmt: skip


async def shape_page(
    j: Journey, snap: CampaignSnapshot, language: str, now: datetime, *, phase: Phase,
    participation: Participation | None, refusal: errors.AppError | None,
) -> CustomerCampaignPageOut:  # fmt: skip
    """The campaign page as ``GET /api/v1/campaigns/{id}`` answers it, for a customer
    whose participation (None: not joined) and join refusal (None: may join) the caller
    found; the admin preview shapes its page here too. ``language``: one of the
    campaign's (``_language``)."""
    content = snap.content.get(language, {})
    totals = {c.id: c.total_stock for c in snap.coupons}
    stock_left = {cid: left for cid, (left, _) in (await stock.stock_left(j.redis, snap.id, totals)).items()}
    how = _coupon_how(snap)
    badge_name, badge_icon, badge_icon_url = snap.badge_face(language)
    rewards = RewardsOut(
        points=snap.reward_points, badge=snap.reward_badge, badge_name=badge_name, badge_icon_media_id=badge_icon,
        badge_icon_url=badge_icon_url,
        coupons=[
            CouponRewardOut(
                id=c.id, **face_of(c, title=localized(c.title, language, snap.default_language)),
                total_stock=c.total_stock, stock_left=stock_left[c.id], per_user_limit=c.per_user_limit,
                grab_starts_at=c.grab_starts_at, points_price=c.points_price, how=how,
            )
            for c in snap.coupons
        ],
        granted_on="completion" if snap.goal_metric else ("join" if snap.grants_on_join() else None),
    )  # fmt: skip
    if participation is not None:
        join_refusal: JoinRefusalOut | None = JoinRefusalOut(
            code="already_joined", reason="joined", message="you already joined this campaign", details={}
        )
    elif refusal is not None:
        join_refusal = JoinRefusalOut(
            code=refusal.code, message=refusal.message, details=refusal.details,
            reason=str(refusal.details.get("reason") or refusal.details.get("phase") or refusal.code),
        )  # fmt: skip
    else:
        join_refusal = None
    return CustomerCampaignPageOut(
        id=snap.id, type=snap.type, status=snap.status, phase=phase,
        language=language, title=content.get("title", ""), summary=content.get("summary", ""),
        benefits=content.get("benefits", ""), how_to_join=content.get("how_to_join", ""),
        terms=content.get("terms", ""), tags=list(snap.tags), categories=list(snap.categories), theme_id=snap.theme_id,
        banner_media_id=snap.banner_media_id, banner_url=snap.banner_url, poster_media_id=snap.poster_media_id,
        poster_url=snap.poster_url, visible_from=snap.visible_from,
        starts_at=snap.starts_at, ends_at=snap.ends_at, redeem_until=snap.redeem_until, channels=list(snap.channels),
        store_ids=None if snap.store_ids is None else sorted(snap.store_ids),
        goal=GoalOut(metric=snap.goal_metric, target=snap.goal_target, window_days=snap.goal_window_days)
        if snap.goal_metric and snap.goal_target else None,
        rewards=rewards, participant_cap=snap.participant_cap,
        participants=await j.seats_taken(snap.id) if snap.participant_cap is not None else None,
        can_join=participation is None and refusal is None, join_refusal=join_refusal,
        participation=JourneyProgressOut.of(journey.progress_view(snap, participation), with_history=False)
        if participation is not None else None,
        server_time=now,
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/campaigns/{id}/join", access=CUSTOMER, tags=("journey",), response=JoinOut, status=201,
    also=(200,),
    summary="Join a campaign (one tap, idempotent: 201 the first time, 200 with the same participation after)",
    errors=(errors.NotFound, errors.CampaignNotActive, errors.NotEligible, errors.ExclusiveConflict,
            errors.CampaignFull, errors.BudgetExhausted, errors.ExperimentHoldout),
)  # fmt: skip
async def join_campaign(request: web.Request) -> JoinOut | web.Response:
    j = _journey(request)
    campaign_id, customer_id, now = path_int(request, "id"), principal_of(request).id, datetime.now(UTC)
    # Before joining: the holdout may not join (no contact), and a join is an exposure.
    await request.app[EXPERIMENTS].check_contact(customer_id, campaign_id, "join", now)
    participation, created = await journey.join(j, campaign_id, customer_id, now)
    snap = await j.catalog.get(participation.campaign_id)
    assert snap is not None
    out = JoinOut(
        participation=JourneyProgressOut.of(journey.progress_view(snap, participation), with_history=False),
        created=created,
    )
    return out if created else json_response(out, status=200)


@routes.add(
    "GET", "/api/v1/campaigns/{id}/progress", access=CUSTOMER, tags=("journey",), response=JourneyProgressOut,
    summary="The caller's progress in a campaign: value, target, percent, what is left, deadline, history",
    errors=(errors.NotFound,),
)  # fmt: skip
async def get_progress(request: web.Request) -> JourneyProgressOut:
    view = await journey.progress_of(_journey(request), path_int(request, "id"), principal_of(request).id)
    return JourneyProgressOut.of(view, with_history=True)


@routes.add(
    "GET", "/api/v1/me/campaigns", access=CUSTOMER, tags=("journey",), query=MyCampaignsQuery,
    response=MyCampaignsOut, summary="The caller's campaigns (status=joined|completed), newest first, with progress",
)  # fmt: skip
async def my_campaigns(request: web.Request, query: MyCampaignsQuery) -> MyCampaignsOut:
    now = datetime.now(UTC)
    rows, nxt = await journey.my_campaigns(
        _journey(request), principal_of(request).id, query.status, query.cursor, query.limit
    )
    items = []
    for snap, view in rows:
        language = _language(request, snap)
        item = MyCampaignOut(
            campaign_id=snap.id, type=snap.type, title=snap.content.get(language, {}).get("title", ""),
            phase=snap.phase(now), ends_at=snap.ends_at, progress=JourneyProgressOut.of(view, with_history=False),
        )  # fmt: skip
        items.append(item)
    return MyCampaignsOut(items=items, next_cursor=nxt)


@routes.add(
    "POST", "/api/v1/checkins", access=CUSTOMER, tags=("journey",), response=CheckInOut, status=201, also=(200,),
    summary="Check in for today (UTC): 201 with the streak, 200 with the same check-in when already done today",
)  # fmt: skip
async def check_in(request: web.Request) -> CheckInOut | web.Response:
    row, progress, created = await journey_events.checkin(
        _journey(request), principal_of(request).id, datetime.now(UTC)
    )
    out = CheckInOut(day=row.day.isoformat(), streak=row.streak, created=created, progress=progress)
    return out if created else json_response(out, status=200)


@routes.add(
    "GET", "/api/v1/me/points", access=CUSTOMER, tags=("journey",), query=PageQuery, response=PointsOut,
    summary="The points balance and the ledger, newest first",
)  # fmt: skip
async def my_points(request: web.Request, query: PageQuery) -> PointsOut:
    customer_id = principal_of(request).id
    page, nxt = await points.history(customer_id, query.cursor, query.limit)
    return PointsOut(
        balance=await points.balance_of(customer_id),
        items=[PointsEntryOut.model_validate(e) for e in page],
        next_cursor=nxt,
    )


@routes.add(
    "GET", "/api/v1/me/badges", access=CUSTOMER, tags=("journey",), response=BadgesOut,
    summary="The badges the caller earned, newest first",
)  # fmt: skip
async def my_badges(request: web.Request) -> BadgesOut:
    j = _journey(request)
    rows = await CustomerBadge.filter(customer_id=principal_of(request).id).order_by("-id")
    # The granting campaigns' snapshots carry the names and icon URLs: one batch, cached.
    snaps = await j.catalog.get_many(sorted({b.campaign_id for b in rows}))
    accept = request.headers.get("Accept-Language")
    items = []
    for b in rows:
        snap = snaps.get(b.campaign_id)
        language: str | None = None
        name, icon, icon_url = b.badge, None, None
        if snap is not None and snap.reward_badge == b.badge:
            language = pick_language(accept, list(snap.content), snap.default_language)
            shown, icon, icon_url = snap.badge_face(language)
            name = shown or b.badge
        items.append(BadgeOut(
            badge=b.badge, campaign_id=b.campaign_id, earned_at=b.earned_at, language=language, name=name,
            icon_media_id=icon, icon_url=icon_url,
        ))  # fmt: skip
    return BadgesOut(items=items)
