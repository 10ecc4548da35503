"""Redeeming vouchers at the till: preview a scanned code, redeem it, reverse, the day's list."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, available_timezones

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from handlers.common.request_meta import idempotency_key
from handlers.common.schemas import PageQuery
from server.access import ANY_STAFF, staff
from server.keys import REDIS, SETTINGS
from server.routing import RouteTable, json_response, path_int, principal_of
from services.core import Body, CouponFace, Day, ErrorBody, Out, errors, face_of
from services.wallet import ScanLimiter, qr, redemption, redemption_checks, redemption_lists

routes = RouteTable()

T = TypeVar("T")

#: A scanned QR payload (about 50 characters), a 16-digit barcode number, or the voucher's
#: code as the wallet shows it, typed by hand (any case; I and L read as 1, O as 0).
Payload = Field(
    min_length=1, max_length=200,
    description="a scanned QR payload, a barcode number, or the voucher code typed by hand (any case, I/L read as 1, "
    "O as 0, spaces and dashes ignored)",
)  # fmt: skip
#: Fen; a till's order is below a hundred million yuan.
Amount = Field(default=None, ge=0, le=10**10)


class RedemptionOut(Out):
    id: int
    voucher_id: str = Field(description="the voucher's id in the customer's wallet")
    voucher_code_masked: str = Field(description="the voucher code, all but its last 4 characters hidden")
    coupon_id: int
    campaign_id: int
    customer_id: int
    title: dict[str, str]
    kind: str
    face_value: int
    store_id: int
    store_name: str
    staff_id: int
    staff_name: str
    order_ref: str | None
    order_amount: int | None
    created_at: datetime
    reversed_at: datetime | None
    reversed_by: int | None
    reverse_reason: str | None


def redemption_out(view: redemption_lists.RedemptionView) -> RedemptionOut:
    return RedemptionOut(**view.__dict__)


class TotalsOut(Out):
    count: int = Field(description="redemptions that stand (reversed ones excluded)")
    face_value: int = Field(description="sum of their vouchers' face values, fen")
    order_amount: int = Field(description="sum of their order amounts (where given), fen")
    reversed: int = Field(description="redemptions reversed")


class RedemptionPageOut(Out):
    items: list[RedemptionOut]
    next_cursor: str | None
    totals: TotalsOut


def till_of(request: web.Request) -> redemption_checks.Till:
    principal = principal_of(request)
    if principal.store_id is None:
        raise errors.Forbidden("this staff token is not bound to a store")
    return redemption_checks.Till(store_id=principal.store_id, staff_id=principal.id, role=principal.role or "")


def code_config(request: web.Request) -> redemption_checks.CodeConfig:
    settings = request.app[SETTINGS]
    return redemption_checks.CodeConfig(qr.keyring_for(settings.qr_keys, settings.qr_retired), settings.qr_ttl_seconds)


class RedemptionPreviewIn(Body):
    payload: str = Payload
    order_amount: int | None = Amount


class PreviewVoucherOut(Out, CouponFace):
    id: str
    code_masked: str
    coupon_id: int
    campaign_id: int
    status: str
    valid_from: datetime
    valid_until: datetime
    used_at: datetime | None
    used_store_id: int | None


class PreviewCustomerOut(Out):
    id: int
    nickname: str | None
    membership_tier: str


class RedemptionPreviewOut(Out):
    voucher: PreviewVoucherOut
    customer: PreviewCustomerOut
    redeemable: bool = Field(description="whether this store may redeem it now (with this order_amount)")
    refusal: ErrorBody | None = Field(description="why not: the error POST /api/v1/staff/redemptions would answer")


_SCAN_ERRORS = (errors.QrExpired, errors.QrInvalid, errors.VoucherNotFound, errors.RateLimited)
#: Scans that found no voucher: what guessing codes looks like (services.wallet.scan_limits).
_NOT_FOUND = (errors.QrInvalid, errors.VoucherNotFound)


async def _scan(request: web.Request, till: redemption.Till, scan: Callable[[], Awaitable[T]]) -> T:
    """Run a preview or redemption under the scan limits: refused (429) while the staff
    member or store is over its limit of scans that found no voucher; counted as one
    such failure if it finds none."""
    limiter = ScanLimiter(request.app[REDIS])
    attempt = await limiter.acquire(till.store_id, till.staff_id)
    not_found = False
    try:
        result = await scan()
    except _NOT_FOUND:
        not_found = True
        raise
    finally:
        # Found (whatever the verdict) or no verdict: not a guess. Shielded: a client that
        # hangs up must not leave the scan counted in flight.
        await asyncio.shield(limiter.done(attempt, actor_of(request), not_found=not_found))
    return result


_REFUSALS = (
    errors.VoucherAlreadyUsed, errors.VoucherExpired, errors.RedeemPeriodOver, errors.VoucherNotYetValid,
    errors.StoreNotAllowed, errors.ChannelNotAllowed, errors.MinSpendNotMet, errors.VoucherNotStackable,
)  # fmt: skip


@routes.add(
    "POST", "/api/v1/staff/redemptions/preview", access=ANY_STAFF, tags=("staff",), body=RedemptionPreviewIn,
    response=RedemptionPreviewOut, errors=(*_SCAN_ERRORS, errors.StoreClosed),
    summary="What a scanned code is, whose, and whether this store may redeem it now (or the precise reason not)",
)  # fmt: skip
async def preview_redemption(request: web.Request, body: RedemptionPreviewIn) -> RedemptionPreviewOut:
    till = till_of(request)
    config, redis = code_config(request), request.app[REDIS]
    found = await _scan(
        request, till, lambda: redemption_checks.preview(config, redis, till, body.payload, body.order_amount)
    )
    v, t = found.voucher, found.template
    refusal = found.refusal
    return RedemptionPreviewOut(
        voucher=PreviewVoucherOut(
            id=v.claim_id, code_masked=redemption_lists.mask_code(v.code), coupon_id=t.id, campaign_id=v.campaign_id,
            status=found.status, **face_of(t, face_value=v.face_value), valid_from=v.valid_from,
            valid_until=v.valid_until, used_at=v.used_at, used_store_id=v.used_store_id,
        ),
        customer=PreviewCustomerOut(
            id=found.customer.id, nickname=found.customer.nickname, membership_tier=found.customer.membership_tier
        ),
        redeemable=refusal is None,
        refusal=None if refusal is None else ErrorBody(code=refusal.code, message=refusal.message,
                                                       details=refusal.details),
    )  # fmt: skip


class RedeemIn(Body):
    payload: str = Payload
    order_amount: int | None = Amount
    order_ref: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="the POS order number: a retry of the same voucher with it is a replay; several vouchers "
        "may share an order unless their campaigns are exclusive",
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/staff/redemptions", access=ANY_STAFF, tags=("staff",), body=RedeemIn, response=RedemptionOut,
    status=201, errors=(*_SCAN_ERRORS, *_REFUSALS, errors.Conflict, errors.StoreClosed),
    summary="Redeem a scanned or typed code (QR payload, barcode number or voucher code), exactly once; "
    "Idempotency-Key header or order_ref make retries return the first answer",
)  # fmt: skip
async def redeem_voucher(request: web.Request, body: RedeemIn) -> web.Response:
    till, key = till_of(request), idempotency_key(request)
    config, redis, actor = code_config(request), request.app[REDIS], actor_of(request)
    view, replayed = await _scan(request, till, lambda: redemption.redeem(
        config, redis, till, actor, body.payload, body.order_amount, body.order_ref, key,
    ))  # fmt: skip
    response = json_response(redemption_out(view), status=201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


class ReverseIn(Body):
    reason: str = Field(min_length=1, max_length=500)


@routes.add(
    "POST", "/api/v1/staff/redemptions/{id}/reverse", access=staff("manager"), tags=("staff",), body=ReverseIn,
    response=RedemptionOut, errors=(errors.NotFound, errors.AlreadyReversed, errors.ReversalWindowPassed),
    summary="Reverse a redemption of your store (managers, within REDEMPTION_REVERSE_WINDOW_SECONDS); "
    "the voucher is available again, or expired if its time has passed",
)  # fmt: skip
async def reverse_redemption(request: web.Request, body: ReverseIn) -> RedemptionOut:
    row = await redemption.reverse(
        till_of(request), actor_of(request), path_int(request, "id"), body.reason,
        request.app[SETTINGS].redemption_reverse_window_seconds,
    )  # fmt: skip
    [view] = await redemption_lists.describe([row])
    return redemption_out(view)


class DayQuery(PageQuery):
    date: Day | None = Field(
        default=None, description="YYYY-MM-DD: a UTC day, or a day in `zone` when given; today by default"
    )
    zone: str | None = Field(
        default=None, min_length=1, max_length=64, examples=["Asia/Shanghai"],
        description="an IANA time zone (the till's, Asia/Shanghai by the console's default): the day runs from "
        "its local midnight to the next; without it the day is a UTC day",
    )  # fmt: skip


@functools.cache
def _known_zones() -> frozenset[str]:
    # Read once: the names the system's tz database holds (no paths, no directories).
    return frozenset(available_timezones())


def _zone(name: str) -> ZoneInfo:
    """The zone, or a 422 naming the field (a typo must not quietly show another day)."""
    if name in _known_zones():
        return ZoneInfo(name)
    raise errors.ValidationFailed(
        "query zone: not a known time zone",
        details={"errors": [{"field": "zone", "message": "not a known time zone", "type": "unknown_zone"}]},
    )


@routes.add(
    "GET", "/api/v1/staff/redemptions", access=ANY_STAFF, tags=("staff",), query=DayQuery,
    response=RedemptionPageOut, errors=(errors.ValidationFailed,),
    summary="The store's redemptions of one day (UTC, or the given zone's), newest first, with totals",
)  # fmt: skip
async def list_store_redemptions(request: web.Request, query: DayQuery) -> RedemptionPageOut:
    store_id = till_of(request).store_id
    if query.zone is None:
        day = query.date or datetime.now(UTC).date()
        filters = redemption_lists.Filters(store_id=store_id, date_from=day, date_to=day)
    else:
        zone = _zone(query.zone)
        since, until = redemption_lists.local_day(query.date or datetime.now(zone).date(), zone)
        filters = redemption_lists.Filters(store_id=store_id, since=since, until=until)
    views, nxt = await redemption_lists.page(filters, query.cursor, query.limit)
    totals = await redemption_lists.totals(filters)
    return RedemptionPageOut(
        items=[redemption_out(v) for v in views], next_cursor=nxt, totals=TotalsOut(**totals.__dict__)
    )
