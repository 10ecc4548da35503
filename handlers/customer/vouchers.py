"""The customer's voucher wallet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.schemas import PageQuery
from server.access import CUSTOMER
from server.keys import COUPON_CACHE, STOCK
from server.routing import RouteTable, principal_of
from server.schema import Out
from services import wallet

routes = RouteTable()


class WalletQuery(PageQuery):
    status: Literal["available", "used", "expired"] | None = None


class WalletVoucherOut(Out):
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
    store_ids: list[int] | None = Field(description="where it may be used; null: wherever its campaign runs")
    channels: list[str] | None
    valid_from: datetime
    valid_until: datetime
    days_left: int = Field(description="whole days until valid_until (0 on the last day or after)")
    issued_at: datetime
    used_at: datetime | None
    used_store_id: int | None
    pending: bool = Field(description="grabbed moments ago; the database has not recorded it yet")


class WalletPageOut(Out):
    items: list[WalletVoucherOut]
    next_cursor: str | None


def wallet_out(view: wallet.VoucherView, now: datetime) -> WalletVoucherOut:
    days_left = max(0, (view.valid_until - now).days)
    return WalletVoucherOut(**view.__dict__, days_left=days_left)


@routes.add(
    "GET", "/api/v1/me/vouchers", access=CUSTOMER, tags=("wallet",), query=WalletQuery, response=WalletPageOut,
    summary="The wallet, newest first (status: available, used, expired); includes grabs not yet persisted",
)  # fmt: skip
async def list_vouchers(request: web.Request, query: WalletQuery) -> WalletPageOut:
    views, nxt = await wallet.list_vouchers(
        principal_of(request).id, query.status, query.cursor, query.limit, request.app[STOCK], request.app[COUPON_CACHE]
    )
    now = datetime.now(UTC)
    return WalletPageOut(items=[wallet_out(v, now) for v in views], next_cursor=nxt)
