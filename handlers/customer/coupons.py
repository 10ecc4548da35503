"""Grabbing a coupon."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from handlers.customer.grab_body import grab_body
from handlers.request_meta import client_address
from server.access import CUSTOMER
from server.keys import COUPON_CACHE, IP_LIMITER, SETTINGS, STOCK
from server.routing import RouteTable, path_int, principal_of
from server.schema import Out
from services import errors, grabs
from services.coupon_cache import CouponInfo
from services.ip_limiter import retry_after
from services.stock import Claim, GrabPolicy

routes = RouteTable()


class VoucherOut(Out):
    id: str
    code: str
    coupon_id: int
    campaign_id: int
    status: str
    kind: str
    title: dict[str, str]
    face_value: int
    percent_off: int | None
    min_spend: int
    item_name: str | None
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime


class GrabOut(Out):
    voucher: VoucherOut


def voucher_of(info: CouponInfo, claim: Claim) -> VoucherOut:
    valid_from, valid_until = info.validity(claim.grabbed_at)
    return VoucherOut(
        id=claim.claim_id, code=claim.code, coupon_id=info.template_id, campaign_id=info.campaign_id,
        status="available", kind=info.kind, title=info.title, face_value=info.face_value,
        percent_off=info.percent_off, min_spend=info.min_spend, item_name=info.item_name, valid_from=valid_from,
        valid_until=valid_until, issued_at=claim.grabbed_at,
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/coupons/{coupon_id}/grab", access=CUSTOMER, tags=("coupons",), response=GrabOut, status=201,
    summary="Grab a coupon (optional Idempotency-Key header: a retry returns the first answer)",
    errors=(errors.GrabNotStarted, errors.CouponLimitReached, errors.CouponSoldOut, errors.BudgetExhausted,
            errors.CampaignNotActive, errors.NotEligible, errors.ExclusiveConflict, errors.RateLimited,
            errors.NotFound),
)  # fmt: skip
async def grab_coupon(request: web.Request) -> web.Response:
    wait = request.app[IP_LIMITER].take(client_address(request))
    if wait:
        raise errors.RateLimited("too many grabs from your address", details={"retry_after": retry_after(wait)})
    settings = request.app[SETTINGS]
    info, claim = await grabs.grab(
        request.app[COUPON_CACHE],
        request.app[STOCK],
        path_int(request, "coupon_id"),
        principal_of(request).id,
        grabs.check_idempotency_key(request.headers.get("Idempotency-Key")),
        GrabPolicy(max_per_window=settings.grab_user_max, window_ms=settings.grab_user_window_ms),
    )
    # GrabOut's JSON, with the coupon's part serialized once (handlers/customer/grab_body.py).
    return web.Response(body=grab_body(info, claim), status=201, content_type="application/json")
