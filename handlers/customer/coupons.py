"""Grabbing a coupon."""

from __future__ import annotations

from aiohttp import web

from handlers.common.request_meta import client_address, idempotency_key
from handlers.customer.voucher_out import GrabOut, voucher_of
from server.access import CUSTOMER
from server.keys import COUPON_CACHE, EXPERIMENTS, IP_LIMITER, POLICIES, STOCK
from server.metrics import count_grab
from server.routing import RouteTable, json_response, path_int, principal_of
from services.core import errors
from services.stock import grabs, retry_after

routes = RouteTable()


@routes.add(
    "POST", "/api/v1/coupons/{coupon_id}/grab", access=CUSTOMER, tags=("coupons",), response=GrabOut, status=201,
    summary="Grab a coupon (optional Idempotency-Key header: a retry returns the first answer, a voucher with "
    "Idempotent-Replayed: true or the same refusal)",
    errors=(errors.GrabNotStarted, errors.CouponLimitReached, errors.CouponSoldOut, errors.BudgetExhausted,
            errors.CampaignNotActive, errors.NotEligible, errors.ExclusiveConflict, errors.RateLimited,
            errors.ExperimentHoldout, errors.NotFound),
)  # fmt: skip
async def grab_coupon(request: web.Request) -> web.Response:
    try:
        wait = request.app[IP_LIMITER].take(client_address(request))
        if wait:
            raise errors.RateLimited("too many grabs from your address", details={"retry_after": retry_after(wait)})
        info, claim = await grabs.grab(
            request.app[COUPON_CACHE],
            request.app[STOCK],
            path_int(request, "coupon_id"),
            principal_of(request).id,
            idempotency_key(request),
            request.app[POLICIES].grab,
            experiments=request.app[EXPERIMENTS],
        )
    except errors.AppError as refusal:
        count_grab(refusal.code)  # the metric's outcome: the refusal's error code
        raise
    count_grab("replayed" if claim.replayed else "ok")
    # The declared model, serialized by the route's own serializer: writing these bytes by
    # hand from a per-coupon cached part measured no saving of CPU per grab (issue 13,
    # bench/RESULTS.md).
    response = json_response(GrabOut(voucher=voucher_of(info, claim)), status=201)
    if claim.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
