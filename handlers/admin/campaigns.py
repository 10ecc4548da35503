"""The campaign builder and its lifecycle, for admins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handlers.admin.campaign_schemas import (
    ApprovalDiffOut,
    CampaignListQuery,
    CampaignMonitorOut,
    CampaignOut,
    CampaignPageOut,
    CampaignPatchIn,
    CampaignSummaryOut,
    CommentRequiredIn,
    CouponMonitorOut,
    DecisionIn,
    FieldChangeOut,
    ReviewEventOut,
    ReviewTrailOut,
    TransitionIn,
)
from handlers.common.actors import actor_of, campaign_policy
from models.campaigns import Campaign, ReviewEvent
from server.access import admin
from server.keys import COUPON_CACHE, JOURNEY, STOCK
from server.routing import RouteTable, path_int
from services.campaigns import CampaignIn, review
from services.campaigns import editing as campaigns
from services.core import errors, newest_first
from services.stock import sync as stock_sync

routes = RouteTable()

BUILDERS = admin("operator", "superadmin")
REVIEWERS = admin("reviewer", "approver", "superadmin")
ANY_ADMIN_ROLE = admin()
_PATH = "/api/v1/admin/campaigns/{id}"


async def campaign_out(campaign: Campaign) -> CampaignOut:
    spec = await campaigns.spec_of(campaign)
    return CampaignOut(
        **spec,
        id=campaign.id,
        status=campaign.status,
        version=campaign.version,
        budget_spent=campaign.budget_spent,
        review_levels=campaign.review_levels,
        review_level_done=campaign.review_level_done,
        created_by=campaign.created_by,
        submitted_by=campaign.submitted_by,
        submitted_at=campaign.submitted_at,
        activated_at=campaign.activated_at,
        ended_at=campaign.ended_at,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )


def _title(campaign: Campaign) -> str:
    texts = campaign.content
    content: dict[str, Any] = texts.get(campaign.default_language) or next(iter(texts.values()), {})
    return str(content.get("title", ""))


async def _audience_validator(rule: dict[str, Any]) -> None:
    # Imported here: targeting is its own domain, and this keeps the import graph one-way.
    from services.audience import rules as audience

    await audience.validate_rule(rule, field="audience_rule")


@routes.add(
    "POST", "/api/v1/admin/campaigns", access=BUILDERS, tags=("campaigns",), body=CampaignIn, response=CampaignOut,
    status=201, summary="Build a campaign (a draft)",
    errors=(errors.InvalidSchedule, errors.BudgetTooSmall, errors.UnknownStore),
)  # fmt: skip
async def create_campaign(request: web.Request, body: CampaignIn) -> CampaignOut:
    campaign = await campaigns.create(body, actor_of(request), _audience_validator)
    return await campaign_out(campaign)


@routes.add(
    "GET", "/api/v1/admin/campaigns", access=ANY_ADMIN_ROLE, tags=("campaigns",), query=CampaignListQuery,
    response=CampaignPageOut, summary="List campaigns (filters: status, type, store, channel, tag, theme, dates)",
)  # fmt: skip
async def list_campaigns(request: web.Request, query: CampaignListQuery) -> CampaignPageOut:
    rows = campaigns.filtered(
        campaigns.ListFilter(
            status=query.status, type=query.type, store_id=query.store_id, channel=query.channel, tag=query.tag,
            theme_id=query.theme_id, active_from=query.active_from, active_to=query.active_to,
        )
    )  # fmt: skip
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    items = [
        CampaignSummaryOut(
            id=c.id,
            type=c.type,
            status=c.status,
            version=c.version,
            title=_title(c),
            theme_id=c.theme_id,
            starts_at=c.starts_at,
            ends_at=c.ends_at,
            visibility=c.visibility,
            channels=c.channels,
            tags=c.tags,
            budget_limit=c.budget_limit,
            budget_spent=c.budget_spent,
        )
        for c in page
    ]
    return CampaignPageOut(items=items, next_cursor=nxt)


@routes.add("GET", _PATH, access=ANY_ADMIN_ROLE, tags=("campaigns",), response=CampaignOut, summary="One campaign")
async def get_campaign(request: web.Request) -> CampaignOut:
    return await campaign_out(await campaigns.get(path_int(request, "id")))


@routes.add(
    "PATCH", _PATH, access=BUILDERS, tags=("campaigns",), body=CampaignPatchIn, response=CampaignOut,
    summary="Edit a campaign: copy edits keep it approved (by policy), rule edits send it back to review",
    errors=(errors.CampaignNotEditable, errors.CampaignStateChanged, errors.InvalidSchedule, errors.BudgetTooSmall,
            errors.UnknownStore),
)  # fmt: skip
async def patch_campaign(request: web.Request, body: Any) -> CampaignOut:
    changes = body.model_dump(exclude_unset=True)
    version = changes.pop("version", None)
    # Nested models stay models in the merge, so re-validation sees typed values.
    changes = {name: getattr(body, name) for name in changes}
    campaign = await campaigns.update(
        path_int(request, "id"), changes, version, actor_of(request), campaign_policy(request), _audience_validator
    )
    await request.app[JOURNEY].campaign_changed(campaign.id)
    return await campaign_out(campaign)


@routes.add(
    "DELETE", _PATH, access=BUILDERS, tags=("campaigns",), status=204,
    summary="Delete a campaign that never left the builder", errors=(errors.CampaignNotEditable,),
)  # fmt: skip
async def delete_campaign(request: web.Request) -> web.Response:
    await campaigns.delete(path_int(request, "id"), actor_of(request))
    return web.Response(status=204)


@routes.add(
    "GET", _PATH + "/reviews", access=ANY_ADMIN_ROLE, tags=("campaigns",), response=ReviewTrailOut,
    summary="The review trail: submissions and each level's decision",
)  # fmt: skip
async def review_trail(request: web.Request) -> ReviewTrailOut:
    campaign = await campaigns.get(path_int(request, "id"))
    events = await ReviewEvent.filter(campaign_id=campaign.id).order_by("id")
    return ReviewTrailOut(items=[ReviewEventOut.model_validate(e) for e in events])


@routes.add(
    "GET", _PATH + "/diff", access=ANY_ADMIN_ROLE, tags=("campaigns",), response=ApprovalDiffOut,
    summary="What changed since the last approved version (the reviewer's diff)",
)  # fmt: skip
async def approval_diff(request: web.Request) -> ApprovalDiffOut:
    diff = await campaigns.approval_diff(path_int(request, "id"))
    return ApprovalDiffOut(
        approved=diff.approved,
        changes=[FieldChangeOut(field=c.field, old=c.old, new=c.new) for c in diff.changes],
    )


@routes.add(
    "GET", _PATH + "/monitor", access=ANY_ADMIN_ROLE, tags=("campaigns",), response=CampaignMonitorOut,
    summary="Flash-sale monitor: stock and budget left, issued, grab refusals by reason per coupon",
)  # fmt: skip
async def campaign_monitor(request: web.Request) -> CampaignMonitorOut:
    campaign = await campaigns.get(path_int(request, "id"))
    found = await request.app[STOCK].monitor(campaign.id)
    return CampaignMonitorOut(
        campaign_id=campaign.id,
        budget_limit=campaign.budget_limit,
        budget_left=found.budget_left,
        coupons=[
            CouponMonitorOut(
                template_id=c.template_id,
                total_stock=c.total_stock,
                stock_left=c.stock_left,
                issued=c.issued,
                refusals=c.refusals,
            )
            for c in found.coupons
        ],
    )


_TRANSITION_ERRORS = (errors.InvalidTransition, errors.CampaignStateChanged)


@routes.add(
    "POST", _PATH + "/submit", access=BUILDERS, tags=("campaigns",), body=TransitionIn, response=CampaignOut,
    summary="Send to review (with REVIEW_LEVELS=0: approved at once)", errors=_TRANSITION_ERRORS,
)  # fmt: skip
async def submit_campaign(request: web.Request, body: TransitionIn) -> CampaignOut:
    campaign = await review.submit(path_int(request, "id"), actor_of(request), campaign_policy(request), body.version)
    return await campaign_out(campaign)


@routes.add(
    "POST", _PATH + "/approve", access=REVIEWERS, tags=("campaigns",), body=DecisionIn, response=CampaignOut,
    summary="Approve the current review level",
    errors=(*_TRANSITION_ERRORS, errors.SelfApprovalForbidden, errors.ReviewLevelMismatch),
)  # fmt: skip
async def approve_campaign(request: web.Request, body: DecisionIn) -> CampaignOut:
    campaign = await review.approve(path_int(request, "id"), actor_of(request), body.comment, body.version)
    return await campaign_out(campaign)


@routes.add(
    "POST", _PATH + "/reject", access=REVIEWERS, tags=("campaigns",), body=CommentRequiredIn, response=CampaignOut,
    summary="Reject: back to the author, with comments", errors=(*_TRANSITION_ERRORS, errors.ReviewLevelMismatch),
)  # fmt: skip
async def reject_campaign(request: web.Request, body: CommentRequiredIn) -> CampaignOut:
    campaign = await review.reject(path_int(request, "id"), actor_of(request), body.comment, body.version)
    return await campaign_out(campaign)


@routes.add(
    "POST", _PATH + "/return", access=REVIEWERS, tags=("campaigns",), body=CommentRequiredIn, response=CampaignOut,
    summary="Send back one level (level 1: to the author; level 2: to level 1)",
    errors=(*_TRANSITION_ERRORS, errors.ReviewLevelMismatch),
)  # fmt: skip
async def return_campaign(request: web.Request, body: CommentRequiredIn) -> CampaignOut:
    campaign = await review.send_back(path_int(request, "id"), actor_of(request), body.comment, body.version)
    return await campaign_out(campaign)


def _transition(name: str, summary: str, action: Any, refusals: tuple[type[errors.AppError], ...] = ()) -> None:
    async def handler(request: web.Request, body: TransitionIn) -> CampaignOut:
        campaign = await action(path_int(request, "id"), actor_of(request), body.version)
        await stock_sync.after_transition(request.app[STOCK], campaign.id, campaign.status)
        request.app[COUPON_CACHE].forget_campaign(campaign.id)
        await request.app[JOURNEY].campaign_changed(campaign.id)
        return await campaign_out(campaign)

    handler.__name__ = f"{name.replace('-', '_')}_campaign"
    routes.add(
        "POST", f"{_PATH}/{name}", access=BUILDERS, tags=("campaigns",), body=TransitionIn, response=CampaignOut,
        summary=summary, errors=(*_TRANSITION_ERRORS, errors.InvalidSchedule, *refusals),
    )(handler)  # fmt: skip


_transition("publish", "Approved → scheduled: it starts at starts_at", review.publish)
_transition("pause", "Active → paused", review.pause)
_transition("resume", "Paused → active", review.resume)
_transition("end", "End now (scheduled, active or paused)", review.end)
_transition("archive", "Ended → archived", review.archive)
_transition(
    "start-now",
    "Approved or scheduled → active now: starts_at moves to now, without a new review (audited); refused when "
    "the earlier start breaks the approved window's rules (see docs/campaigns.md)",
    review.start_now,
    (errors.CampaignWindowOver, errors.TeaserRequired, errors.ExclusiveOverlap),
)
