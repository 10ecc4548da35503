"""Budget top-up requests and their approval."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from models.campaigns import BudgetTopUp
from server.access import admin
from server.keys import STOCK
from server.routing import RouteTable, path_int
from services.campaigns import MAX_MONEY, budget
from services.campaigns import editing as campaigns
from services.core import Body, Out, errors

routes = RouteTable()


class TopUpIn(Body):
    amount: int = Field(ge=1, le=MAX_MONEY, description="fen to add to the cap")
    reason: str = Field(default="", max_length=500)


class TopUpDecisionIn(Body):
    comment: str = Field(default="", max_length=1000)


class TopUpOut(Out):
    id: int
    campaign_id: int
    amount: int
    reason: str
    status: str
    requested_by: int
    decided_by: int | None
    decided_at: datetime | None
    created_at: datetime


class TopUpListOut(Out):
    items: list[TopUpOut]


def _out(topup: BudgetTopUp) -> TopUpOut:
    return TopUpOut(
        id=topup.id, campaign_id=topup.campaign_id, amount=topup.amount, reason=topup.reason,
        status=topup.status, requested_by=topup.requested_by, decided_by=topup.decided_by,
        decided_at=topup.decided_at, created_at=topup.created_at,
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/admin/campaigns/{id}/budget-topups", access=admin("operator", "superadmin"),
    tags=("campaigns",), body=TopUpIn, response=TopUpOut, status=201,
    summary="Ask for more budget; an approver decides", errors=(errors.BudgetUncapped, errors.CampaignNotEditable),
)  # fmt: skip
async def request_topup(request: web.Request, body: TopUpIn) -> TopUpOut:
    topup = await budget.request_topup(path_int(request, "id"), body.amount, body.reason, actor_of(request))
    return _out(topup)


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/budget-topups", access=admin(), tags=("campaigns",),
    response=TopUpListOut, summary="A campaign's top-up requests",
)  # fmt: skip
async def list_topups(request: web.Request) -> TopUpListOut:
    campaign = await campaigns.get(path_int(request, "id"))
    rows = await BudgetTopUp.filter(campaign_id=campaign.id).order_by("-id")
    return TopUpListOut(items=[_out(t) for t in rows])


def _decision(name: str, approve: bool) -> None:
    async def handler(request: web.Request, body: TopUpDecisionIn) -> TopUpOut:
        topup = await budget.decide_topup(path_int(request, "id"), approve, body.comment, actor_of(request))
        if approve:
            # The cap grows in Redis too, so grabs stopped by the budget resume at once.
            await request.app[STOCK].add_budget(topup.campaign_id, topup.amount)
        return _out(topup)

    handler.__name__ = f"{name}_topup"
    routes.add(
        "POST", f"/api/v1/admin/budget-topups/{{id}}/{name}", access=admin("approver", "superadmin"),
        tags=("campaigns",), body=TopUpDecisionIn, response=TopUpOut,
        summary=f"{name.capitalize()} a budget top-up (not your own request)",
        errors=(errors.SelfApprovalForbidden, errors.InvalidTransition, errors.CampaignStateChanged),
    )(handler)  # fmt: skip


_decision("approve", True)
_decision("reject", False)
