"""Lucky draws (抽奖): draw once, and the caller's draws (services/forms/draw.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.request_meta import client_address, idempotency_key
from handlers.common.schemas import PageQuery
from server.access import CUSTOMER
from server.keys import DRAWS, POLICIES, REDIS, WECHAT
from server.routing import RouteTable, json_response, principal_of
from services.core import Body, Id, Out, errors
from services.forms import DrawOutcome, my_draws, screen

routes = RouteTable()


class DrawRequestIn(Body):
    campaign_id: Id


class DrawnVoucherOut(Out):
    coupon_id: int
    claim_id: str
    code: str | None = Field(
        description="the voucher's code (the voucher shows in the wallet at once); null in the list of draws"
    )


class DrawOut(Out):
    draw_id: str
    prize: str = Field(description="the prize's key in the campaign's table")
    kind: Literal["coupon", "points", "none"]
    voucher: DrawnVoucherOut | None = Field(description="kind coupon: the voucher won")
    points: int = Field(description="kind points: the points won (credited by the worker within seconds)")
    entry: Literal["free", "task", "points"] = Field(
        description="what the draw cost: one of today's free draws, a completed task (a participation of one of the "
        "campaign's task_campaign_ids), or points"
    )
    points_spent: int
    drawn_at: datetime


class MyDrawsQuery(PageQuery):
    campaign_id: Id | None = None


class MyDrawsOut(Out):
    items: list[DrawOut]
    next_cursor: str | None


def _out(d: DrawOutcome) -> DrawOut:
    voucher = None
    if d.kind == "coupon" and d.template_id is not None and d.claim_id and d.code:
        voucher = DrawnVoucherOut(coupon_id=d.template_id, claim_id=d.claim_id, code=d.code)
    return DrawOut(
        draw_id=d.draw_id, prize=d.prize_key, kind=d.kind, voucher=voucher, points=d.points,  # type: ignore[arg-type]
        entry=d.entry, points_spent=d.points_cost, drawn_at=d.drawn_at,  # type: ignore[arg-type]
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/draws", access=CUSTOMER, tags=("forms",), body=DrawRequestIn, response=DrawOut, status=201,
    summary="Draw once in a lucky_draw campaign: a free draw of the day, else a completed task not spent yet, else "
    "its points cost (optional Idempotency-Key header: a retry returns the first answer, with Idempotent-Replayed: "
    "true)",
    errors=(errors.NotFound, errors.NotALuckyDraw, errors.CampaignNotActive, errors.NotEligible,
            errors.ExclusiveConflict, errors.BudgetExhausted, errors.DrawLimitReached, errors.TaskRequired,
            errors.InsufficientPoints, errors.DrawCancelled, errors.RiskRefused),
)  # fmt: skip
async def draw(request: web.Request, body: DrawRequestIn) -> web.Response:
    customer_id = principal_of(request).id
    await screen(
        redis=request.app[REDIS], wechat=request.app[WECHAT], policy=request.app[POLICIES].risk,
        customer_id=customer_id, client_ip=client_address(request),
    )  # fmt: skip
    outcome = await request.app[DRAWS].draw(
        campaign_id=body.campaign_id, customer_id=customer_id, idempotency_key=idempotency_key(request),
        now=datetime.now(UTC),
    )  # fmt: skip
    response = json_response(_out(outcome), status=201)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.add(
    "GET", "/api/v1/draws", access=CUSTOMER, tags=("forms",), query=MyDrawsQuery, response=MyDrawsOut,
    summary="The caller's draws (of one campaign with campaign_id), newest first, as the database has them",
)  # fmt: skip
async def list_draws(request: web.Request, query: MyDrawsQuery) -> MyDrawsOut:
    rows, nxt = await my_draws(principal_of(request).id, query.campaign_id, query.cursor, query.limit)
    items = [
        DrawOut(
            draw_id=r.draw_id,
            prize=r.prize_key,
            kind=r.prize_kind,  # type: ignore[arg-type]
            voucher=DrawnVoucherOut(coupon_id=r.template_id, claim_id=r.claim_id, code=None)
            if r.template_id is not None and r.claim_id
            else None,
            points=r.prize_points,
            entry=r.entry,  # type: ignore[arg-type]
            points_spent=r.points_cost,
            drawn_at=r.drawn_at,
        )
        for r in rows
    ]
    return MyDrawsOut(items=items, next_cursor=nxt)
