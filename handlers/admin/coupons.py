"""Admin operations on coupon stock: adding stock, reconciling Redis with the database."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from server.access import admin
from server.keys import REDIS, SETTINGS, STOCK
from server.routing import RouteTable, path_int
from server.workers import claims_worker
from services.core import Body, Id, Out, audit, errors
from services.stock import admin as stock_admin
from services.stock import reconcile, stock_left

routes = RouteTable()


class AddStockIn(Body):
    add: int = Field(ge=1, le=10_000_000)


class StockOut(Out):
    coupon_id: int
    total_stock: int
    redis_stock: int | None = Field(description="what Redis has left to grab; null when not loaded")


class ReconcileIn(Body):
    coupon_id: Id | None = None


class StockDriftOut(Out):
    before: int | None = Field(description="stock left in Redis before; null when the coupon was not in Redis")
    after: int = Field(description="stock left after the rebuild from the vouchers table")


class HoldersDriftOut(Out):
    before: int | None = Field(description="distinct customers in Redis's holders before; null: coupon not in Redis")
    after: int = Field(description="distinct customers holding a voucher of the coupon, from the vouchers table")
    corrected: int = Field(description="customers whose voucher count Redis had wrong, missing or extra")


class DriftOut(Out):
    stock: StockDriftOut | None = Field(description="null when Redis had the right stock")
    holders: HoldersDriftOut | None = Field(description="null when Redis had every holder's count right")


class CouponReportOut(Out):
    coupon_id: int
    campaign_id: int
    issued: int = Field(description="vouchers of the coupon in the database")
    stock_before: int | None = Field(description="stock left in Redis before; null when the coupon was not in Redis")
    stock_after: int
    holder_customers_before: int | None = Field(
        description="distinct customers in Redis's holders before; null when the coupon was not in Redis"
    )
    holder_customers_after: int = Field(description="distinct customers holding a voucher of the coupon")
    drift: DriftOut = Field(description="what reconciling changed; both null when nothing had drifted")
    repaired: bool = Field(description="true only when something had drifted (drift.stock or drift.holders)")

    @classmethod
    def of(cls, r: reconcile.CouponReport) -> CouponReportOut:
        holders = None
        if r.holders_corrected:
            holders = HoldersDriftOut(
                before=r.holder_customers_before, after=r.holder_customers_after, corrected=r.holders_corrected
            )
        stock = StockDriftOut(before=r.stock_before, after=r.stock_after) if r.stock_drifted else None
        return cls(
            coupon_id=r.coupon_id,
            campaign_id=r.campaign_id,
            issued=r.issued,
            stock_before=r.stock_before,
            stock_after=r.stock_after,
            holder_customers_before=r.holder_customers_before,
            holder_customers_after=r.holder_customers_after,
            drift=DriftOut(stock=stock, holders=holders),
            repaired=r.repaired,
        )


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
    # Summed over a hot coupon's buckets (services.stock.hot).
    found = await stock_left(stock.redis, template.campaign_id, {template.id: template.total_stock})
    left, source = found[template.id]
    return StockOut(
        coupon_id=template.id, total_stock=template.total_stock, redis_stock=left if source == "redis" else None
    )


@routes.add(
    "POST", "/api/v1/admin/coupons/reconcile", access=admin("superadmin"), tags=("coupons",), body=ReconcileIn,
    response=ReconcileOut, summary="Rebuild Redis stock counters from the database (all live coupons, or one)",
    errors=(errors.NotFound,),
)  # fmt: skip
async def reconcile_stock(request: web.Request, body: ReconcileIn) -> ReconcileOut:
    worker = claims_worker(request.app[REDIS], request.app[SETTINGS])
    reports = await reconcile.reconcile(request.app[STOCK], worker, body.coupon_id)
    # One entry per run: what Redis had (before) and has now (after), per coupon.
    before = {str(r.coupon_id): {"stock": r.stock_before, "holders": r.holder_customers_before} for r in reports}
    after = {str(r.coupon_id): {"stock": r.stock_after, "holders": r.holder_customers_after} for r in reports}
    await audit.record(actor_of(request), "stock.reconcile", "coupon", body.coupon_id, before, after)
    return ReconcileOut(items=[CouponReportOut.of(r) for r in reports])
