"""Admin operations on coupon stock: adding stock, reconciling Redis with the database."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from server.access import admin
from server.keys import REDIS, SETTINGS, STOCK
from server.routing import RouteTable, path_int
from server.workers import claims_worker
from services.core import Body, Id, Out, errors
from services.stock import CampaignKeys, reconcile
from services.stock import admin as stock_admin

routes = RouteTable()


class AddStockIn(Body):
    add: int = Field(ge=1, le=10_000_000)


class StockOut(Out):
    coupon_id: int
    total_stock: int
    redis_stock: int | None = Field(description="what Redis has left to grab; null when not loaded")


class ReconcileIn(Body):
    coupon_id: Id | None = None


class CouponReportOut(Out):
    coupon_id: int
    campaign_id: int
    issued: int
    stock_before: int | None
    stock_after: int
    holders_before: int | None
    holders_after: int
    repaired: bool


class ReconcileOut(Out):
    items: list[CouponReportOut]


@routes.add(
    "POST", "/api/v1/admin/coupons/{id}/stock", access=admin("operator", "superadmin"), tags=("coupons",),
    body=AddStockIn, response=StockOut, summary="Add stock to a coupon (the budget must cover at least one more)",
    errors=(errors.BudgetExhausted, errors.CampaignNotEditable, errors.NotFound),
)  # fmt: skip
async def add_stock(request: web.Request, body: AddStockIn) -> StockOut:
    stock = request.app[STOCK]
    template = await stock_admin.add_stock(stock, path_int(request, "id"), body.add, actor_of(request))
    left = await stock.redis.hget(CampaignKeys(template.campaign_id).coupon(template.id), "stock")
    return StockOut(
        coupon_id=template.id, total_stock=template.total_stock, redis_stock=None if left is None else int(left)
    )


@routes.add(
    "POST", "/api/v1/admin/coupons/reconcile", access=admin("superadmin"), tags=("coupons",), body=ReconcileIn,
    response=ReconcileOut, summary="Rebuild Redis stock counters from the database (all live coupons, or one)",
    errors=(errors.NotFound,),
)  # fmt: skip
async def reconcile_stock(request: web.Request, body: ReconcileIn) -> ReconcileOut:
    worker = claims_worker(request.app[REDIS], request.app[SETTINGS])
    reports = await reconcile.reconcile(request.app[STOCK], worker, body.coupon_id)
    return ReconcileOut(items=[CouponReportOut(**{**r.__dict__, "repaired": r.repaired}) for r in reports])
