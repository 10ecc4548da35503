"""Exchanging points for a coupon."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.request_meta import idempotency_key
from handlers.customer.voucher_out import VoucherOut, voucher_of
from server.access import CUSTOMER
from server.keys import COUPON_CACHE, JOURNEY
from server.routing import RouteTable, json_response, principal_of
from services.core import Body, Id, Out, errors
from services.journey import exchange

routes = RouteTable()


class ExchangeIn(Body):
    coupon_id: Id


class ExchangeOut(Out):
    exchange_id: int
    status: Literal["issued", "pending"] = Field(
        description="issued: the voucher is yours; pending: paid for, the voucher follows shortly (Redis was "
        "unreachable; a worker finishes it, or refunds the points if the coupon is refused)"
    )
    voucher: VoucherOut | None = Field(description="null while pending")
    points_spent: int
    balance: int = Field(description="the points balance after the exchange")


@routes.add(
    "POST", "/api/v1/me/points/exchange", access=CUSTOMER, tags=("journey",), body=ExchangeIn, response=ExchangeOut,
    status=201,
    summary="Exchange points for a coupon, atomically (optional Idempotency-Key header: a retry returns the first "
    "answer, with Idempotent-Replayed: true)",
    errors=(errors.NotFound, errors.CouponNotExchangeable, errors.InsufficientPoints, errors.CouponSoldOut,
            errors.CouponLimitReached, errors.BudgetExhausted, errors.CampaignNotActive, errors.NotEligible,
            errors.ExclusiveConflict, errors.GrabNotStarted, errors.Conflict),
)  # fmt: skip
async def exchange_points(request: web.Request, body: ExchangeIn) -> web.Response:
    result = await exchange.exchange(
        request.app[JOURNEY], request.app[COUPON_CACHE], principal_of(request).id, body.coupon_id,
        idempotency_key(request), datetime.now(UTC),
    )  # fmt: skip
    out = ExchangeOut(
        exchange_id=result.grant.id,
        status="issued" if result.claim is not None else "pending",
        voucher=voucher_of(result.info, result.claim) if result.claim is not None else None,
        points_spent=result.price,
        balance=result.balance,
    )
    response = json_response(out, status=201)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
