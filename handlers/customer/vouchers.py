"""The customer's voucher wallet."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import PageQuery
from server.access import CUSTOMER
from server.keys import COUPON_CACHE, REDIS, SETTINGS, STOCK
from server.routing import RouteTable, principal_of
from services.core import CouponFace, Out, Query, errors
from services.wallet import qr, redemption_checks, redemption_codes
from services.wallet import vouchers as wallet

routes = RouteTable()


class WalletQuery(PageQuery):
    status: Literal["available", "used", "expired"] | None = None


class WalletVoucherOut(Out, CouponFace):
    id: str
    code: str
    coupon_id: int
    campaign_id: int
    status: str
    store_ids: list[int] | None = Field(description="where it may be used; null: wherever its campaign runs")
    channels: list[str] | None
    valid_from: datetime
    valid_until: datetime
    days_left: int = Field(description="whole days until valid_until (0 on the last day or after)")
    issued_at: datetime
    used_at: datetime | None
    used_store_id: int | None
    used_store_name: str | None = Field(default=None, description="where it was used")
    pending: bool = Field(description="grabbed moments ago; the database has not recorded it yet")


class WalletPageOut(Out):
    items: list[WalletVoucherOut]
    next_cursor: str | None


def wallet_out(view: wallet.VoucherView, now: datetime, names: dict[int, str] | None = None) -> WalletVoucherOut:
    days_left = max(0, (view.valid_until - now).days)
    used_store_name = (names or {}).get(view.used_store_id) if view.used_store_id is not None else None
    return WalletVoucherOut(**view.__dict__, days_left=days_left, used_store_name=used_store_name)


@routes.add(
    "GET", "/api/v1/me/vouchers", access=CUSTOMER, tags=("wallet",), query=WalletQuery, response=WalletPageOut,
    summary="The wallet, newest first (status: available, used, expired); includes grabs not yet persisted",
)  # fmt: skip
async def list_vouchers(request: web.Request, query: WalletQuery) -> WalletPageOut:
    views, nxt = await wallet.list_vouchers(
        principal_of(request).id, query.status, query.cursor, query.limit, request.app[STOCK], request.app[COUPON_CACHE]
    )
    now = datetime.now(UTC)
    names = await wallet.store_names({v.used_store_id for v in views if v.used_store_id is not None})
    return WalletPageOut(items=[wallet_out(v, now, names) for v in views], next_cursor=nxt)


# --------------------------------------------------------------------------- one voucher, its code

#: Voucher ids in paths are claim ids (never the voucher code, which is a secret).
CLAIM_ID_PATTERN = r"^[0-9A-Z]{1,40}$"
_CLAIM_ID = re.compile(CLAIM_ID_PATTERN)
#: The voucher routes' ``{id}``, for the OpenAPI document.
_VOUCHER_ID = (("id", CLAIM_ID_PATTERN),)


def _claim_id(request: web.Request) -> str:
    raw = request.match_info.get("id", "")
    if not _CLAIM_ID.match(raw):
        raise errors.VoucherNotFound()
    return raw


class HistoryOut(Out):
    event: Literal["issued", "used", "reversed", "expired"]
    at: datetime
    store_id: int | None
    store_name: str | None
    redemption_id: int | None


class VoucherDetailOut(WalletVoucherOut):
    history: list[HistoryOut] = Field(description="oldest first: issued, each use and reversal, expiry")


@routes.add(
    "GET", "/api/v1/me/vouchers/{id}", access=CUSTOMER, tags=("wallet",),
    text_params=_VOUCHER_ID, response=VoucherDetailOut,
    summary="One voucher of the wallet (id: the voucher's id in the list) with its history",
    errors=(errors.VoucherNotFound,),
)  # fmt: skip
async def voucher_detail(request: web.Request) -> VoucherDetailOut:
    view, history = await wallet.voucher_detail(
        principal_of(request).id, _claim_id(request), request.app[STOCK], request.app[COUPON_CACHE]
    )
    names = await wallet.store_names({view.used_store_id} if view.used_store_id is not None else set())
    out = wallet_out(view, datetime.now(UTC), names)
    return VoucherDetailOut(**out.model_dump(), history=[HistoryOut(**e.__dict__) for e in history])


class QrOut(Out):
    payload: str = Field(description="the text to encode in the QR code (signed; valid until expires_at)")
    expires_at: datetime
    refresh_after: int = Field(description="seconds after which to fetch a fresh code")


class QrPngQuery(Query):
    size: int = Field(default=256, ge=qr.QR_SIZE_MIN, le=qr.QR_SIZE_MAX, description="pixels a side")


def _code_config(request: web.Request) -> redemption_checks.CodeConfig:
    settings = request.app[SETTINGS]
    return redemption_checks.CodeConfig(qr.keyring_for(settings.qr_keys, settings.qr_retired), settings.qr_ttl_seconds)


async def _qr(request: web.Request) -> redemption_codes.IssuedCode:
    return await redemption_codes.qr_code(
        principal_of(request).id, _claim_id(request), request.app[STOCK], request.app[COUPON_CACHE],
        _code_config(request),
    )  # fmt: skip


def _png(body: bytes, code: redemption_codes.IssuedCode) -> web.Response:
    return web.Response(
        body=body,
        content_type="image/png",
        headers={"Cache-Control": "no-store", "X-Expires-At": code.expires_at.isoformat()},
    )


_CODE_ERRORS = (errors.VoucherNotFound, errors.VoucherAlreadyUsed, errors.VoucherExpired)


@routes.add(
    "GET", "/api/v1/me/vouchers/{id}/qr", access=CUSTOMER, tags=("wallet",),
    text_params=_VOUCHER_ID, response=QrOut,
    summary="A fresh signed QR payload for an available voucher (expires in QR_TTL_SECONDS)", errors=_CODE_ERRORS,
)  # fmt: skip
async def voucher_qr(request: web.Request) -> web.Response:
    code = await _qr(request)
    out = QrOut(payload=code.payload, expires_at=code.expires_at, refresh_after=code.refresh_after)
    return web.Response(
        body=out.model_dump_json().encode(), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


@routes.add(
    "GET", "/api/v1/me/vouchers/{id}/qr.png", access=CUSTOMER, tags=("wallet",),
    text_params=_VOUCHER_ID, query=QrPngQuery,
    media_type="image/png", summary="The QR code as a PNG (size 128-1024 px, default 256)", errors=_CODE_ERRORS,
)  # fmt: skip
async def voucher_qr_png(request: web.Request, query: QrPngQuery) -> web.Response:
    code = await _qr(request)
    return _png(await asyncio.to_thread(qr.qr_png, code.payload, query.size), code)


@routes.add(
    "GET", "/api/v1/me/vouchers/{id}/barcode.png", access=CUSTOMER, tags=("wallet",),
    text_params=_VOUCHER_ID, media_type="image/png",
    summary="A Code 128 barcode of a fresh short-lived numeric code, for 1-D scanners", errors=_CODE_ERRORS,
)  # fmt: skip
async def voucher_barcode_png(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    code = await redemption_codes.numeric_code(
        principal_of(request).id, _claim_id(request), request.app[STOCK], request.app[COUPON_CACHE],
        request.app[REDIS], settings.qr_ttl_seconds,
    )  # fmt: skip
    return _png(await asyncio.to_thread(qr.barcode_png, code.payload), code)
