"""Customer service: find a customer, see everything about them, adjust points, set the
tier, void and grant vouchers (services.support).

Who may: operators and superadmins (``CUSTOMER_SERVICE``); reviewers and approvers work on
campaigns, not on customers. Phone numbers are shown in full to superadmins only, masked
(``138****5678``) to everyone else."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field, StringConstraints, model_validator

from handlers.common.actors import actor_of
from handlers.common.request_meta import idempotency_key
from handlers.common.schemas import PageQuery
from server.access import admin
from server.keys import JOURNEY, PRINCIPAL
from server.routing import RouteTable, json_response, path_int
from services import support
from services.core import Body, Id, Out, errors

routes = RouteTable()

#: The admin roles that use customer service.
CUSTOMER_SERVICE = admin("operator", "superadmin")
#: The roles that see customers' phone numbers unmasked.
FULL_PHONE_ROLES = frozenset({"superadmin"})

Tier = Literal["standard", "silver", "gold", "platinum"]
Stage = Literal["new", "unactivated", "active", "silent", "churned"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
#: Most points one adjustment may move (either way): a typo guard.
MAX_POINTS_DELTA = 10_000_000


def _full_phone(request: web.Request) -> bool:
    principal = request.get(PRINCIPAL)
    return principal is not None and principal.role in FULL_PHONE_ROLES


def _phone(request: web.Request, number: str | None) -> str | None:
    return number if _full_phone(request) else support.mask_phone(number)


# --- list and detail -----------------------------------------------------------------------


class CustomerSearchQuery(PageQuery):
    id: Id | None = Field(default=None, description="exactly this customer")
    openid: str | None = Field(default=None, min_length=1, max_length=64)
    phone_suffix: str | None = Field(
        default=None, pattern=r"^[0-9]{4}$", description="the last four digits of the bound phone number"
    )
    nickname: str | None = Field(default=None, min_length=1, max_length=64, description="part of the nickname")
    tier: Tier | None = None
    city: str | None = Field(default=None, min_length=1, max_length=64)
    lifecycle_stage: Stage | None = None


class CustomerRowOut(Out):
    id: int
    openid: str
    nickname: str | None
    phone: str | None = Field(description="masked (138****5678) unless the caller is a superadmin")
    phone_country_code: str | None
    membership_tier: str
    city: str | None
    lifecycle_stage: str
    created_at: datetime
    last_login_at: datetime | None


class CustomerPageOut(Out):
    items: list[CustomerRowOut]
    next_cursor: str | None


def _row_out(request: web.Request, row: dict[str, Any]) -> CustomerRowOut:
    return CustomerRowOut(
        **{k: v for k, v in row.items() if k != "phone_number"}, phone=_phone(request, row["phone_number"])
    )


@routes.add(
    "GET", "/api/v1/admin/customers", access=CUSTOMER_SERVICE, tags=("customers",), query=CustomerSearchQuery,
    response=CustomerPageOut,
    summary="Customers, newest first: search by id, openid, phone_suffix (last four digits) or nickname (part); "
    "filter by tier, city, lifecycle_stage",
)  # fmt: skip
async def list_customers(request: web.Request, query: CustomerSearchQuery) -> CustomerPageOut:
    search = support.Search(
        customer_id=query.id, openid=query.openid, phone_suffix=query.phone_suffix, nickname=query.nickname,
        tier=query.tier, city=query.city, lifecycle_stage=query.lifecycle_stage,
    )  # fmt: skip
    rows, nxt = await support.search(search, query.cursor, query.limit)
    return CustomerPageOut(items=[_row_out(request, r) for r in rows], next_cursor=nxt)


class CustomerProfileOut(CustomerRowOut):
    unionid: str | None
    interest_tags: list[str]
    preferred_store_id: int | None
    phone_bound_at: datetime | None


class CustomerFactsOut(Out):
    spend_7d: int
    spend_30d: int
    spend_90d: int
    spend_180d: int
    spend_365d: int
    visits_7d: int
    visits_30d: int
    visits_90d: int
    visits_180d: int
    visits_365d: int
    purchases_total: int
    spend_total: int
    first_purchase_at: date | None
    last_purchase_at: date | None
    last_visit_at: date | None
    last_active_at: date | None
    lifecycle_stage: str


class SupportVoucherOut(Out):
    id: int = Field(description="the voucher's id (POST /api/v1/admin/vouchers/{id}/void)")
    claim_id: str = Field(description="the id the customer's wallet shows")
    code: str
    coupon_id: int
    campaign_id: int
    title: str | None = None
    status: str = Field(description="available, used, expired or void")
    face_value: int
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime
    used_at: datetime | None
    used_store_id: int | None
    manual_grant: bool = Field(description="granted by customer service (granted_by: the admin)")
    granted_by: int | None
    voided_at: datetime | None
    voided_by: int | None
    void_reason: str | None
    stock_returned: bool = Field(description="voided by customer service with its stock and budget given back")


class WalletCountsOut(Out):
    available: int
    used: int
    expired: int
    void: int


class SupportWalletOut(Out):
    counts: WalletCountsOut
    vouchers: list[SupportVoucherOut] = Field(description="the newest 50")


class LedgerEntryOut(Out):
    id: int
    delta: int
    balance_after: int
    reason: str = Field(description="purchase, refund, campaign_reward, exchange, manual, ...")
    note: str | None = Field(description="a manual adjustment's reason")
    admin_id: int | None
    campaign_id: int | None
    created_at: datetime


class SupportPointsOut(Out):
    balance: int
    ledger: list[LedgerEntryOut] = Field(description="the newest 20")
    ledger_next_cursor: str | None = Field(description="more: GET /api/v1/admin/customers/{id}/points?cursor=<this>")


class SupportParticipationOut(Out):
    participation_id: int
    campaign_id: int
    title: str | None
    campaign_status: str | None
    status: str
    progress: int
    goal_metric: str | None
    goal_target: int | None
    joined_at: datetime
    completed_at: datetime | None


class SupportRedemptionOut(Out):
    id: int
    voucher_id: int
    store_id: int
    staff_id: int
    campaign_id: int
    face_value: int
    order_ref: str | None
    created_at: datetime
    reversed_at: datetime | None


class SupportNotificationOut(Out):
    id: int
    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None


class TierChangeOut(Out):
    id: int
    from_tier: str
    to_tier: str
    source: Literal["admin", "integration"]
    admin_id: int | None
    integration_id: int | None
    reason: str
    created_at: datetime


class CustomerDetailOut(Out):
    profile: CustomerProfileOut
    facts: CustomerFactsOut
    wallet: SupportWalletOut
    points: SupportPointsOut
    campaigns: list[SupportParticipationOut] = Field(description="the newest 20 participations")
    redemptions: list[SupportRedemptionOut] = Field(description="the newest 20")
    notifications: list[SupportNotificationOut] = Field(description="the newest 20 messages queued or sent")
    tier_changes: list[TierChangeOut] = Field(description="the newest 20")


@routes.add(
    "GET", "/api/v1/admin/customers/{id}", access=CUSTOMER_SERVICE, tags=("customers",),
    response=CustomerDetailOut, errors=(errors.NotFound,),
    summary="One customer: profile, facts, wallet, points and ledger, campaigns and progress, recent "
    "redemptions, notifications and tier changes",
)  # fmt: skip
async def get_customer(request: web.Request) -> CustomerDetailOut:
    found = await support.detail(path_int(request, "id"))
    profile = found["profile"]
    return CustomerDetailOut(**{**found, "profile": {**profile, "phone": _phone(request, profile.pop("phone_number"))}})


class LedgerPageOut(Out):
    items: list[LedgerEntryOut]
    next_cursor: str | None


@routes.add(
    "GET", "/api/v1/admin/customers/{id}/points", access=CUSTOMER_SERVICE, tags=("customers",), query=PageQuery,
    response=LedgerPageOut, errors=(errors.NotFound,), summary="A customer's points ledger, newest first",
)  # fmt: skip
async def customer_ledger(request: web.Request, query: PageQuery) -> LedgerPageOut:
    rows, nxt = await support.ledger(path_int(request, "id"), query.cursor, query.limit)
    return LedgerPageOut(items=[LedgerEntryOut(**r) for r in rows], next_cursor=nxt)


# --- writes --------------------------------------------------------------------------------


class PointsAdjustIn(Body):
    delta: int = Field(ge=-MAX_POINTS_DELTA, le=MAX_POINTS_DELTA, description="points to add (negative: take away)")
    reason: Reason

    @model_validator(mode="after")
    def _nonzero(self) -> PointsAdjustIn:
        if self.delta == 0:
            raise ValueError("delta: must not be 0")
        return self


class PointsAdjustOut(Out):
    entry: LedgerEntryOut
    balance: int
    replayed: bool = Field(description="true: this Idempotency-Key was answered before; this is that entry")


@routes.add(
    "POST", "/api/v1/admin/customers/{id}/points", access=CUSTOMER_SERVICE, tags=("customers",),
    body=PointsAdjustIn, response=PointsAdjustOut, status=201, also=(200,),
    errors=(errors.NotFound, errors.InsufficientPoints, errors.Conflict),
    summary="Adjust a customer's points by hand through the ledger (audited; optional Idempotency-Key). A debit "
    "never takes the balance below 0: 409 insufficient_points",
)  # fmt: skip
async def adjust_points(request: web.Request, body: PointsAdjustIn) -> PointsAdjustOut | web.Response:
    entry, balance, replayed = await support.adjust_points(
        path_int(request, "id"), body.delta, body.reason, actor_of(request), idempotency_key(request)
    )
    out = PointsAdjustOut(entry=LedgerEntryOut(**entry), balance=balance, replayed=replayed)
    return json_response(out, status=200) if replayed else out


class TierIn(Body):
    tier: Tier
    reason: Reason


class TierOut(Out):
    customer_id: int
    from_tier: str
    to_tier: str
    changed: bool = Field(description="false: the customer already had this tier (nothing recorded)")
    change_id: int | None


@routes.add(
    "PUT", "/api/v1/admin/customers/{id}/tier", access=CUSTOMER_SERVICE, tags=("customers",), body=TierIn,
    response=TierOut, errors=(errors.NotFound, errors.Conflict),
    summary="Set a customer's membership tier (recorded with this admin as its source, audited, a tier_changed "
    "automation trigger; the customer's feed follows at once)",
)  # fmt: skip
async def set_tier(request: web.Request, body: TierIn) -> TierOut:
    outcome = await support.set_tier(request.app[JOURNEY], path_int(request, "id"), body.tier, body.reason,
                                     actor_of(request))  # fmt: skip
    return TierOut(
        customer_id=outcome.customer_id, from_tier=outcome.from_tier, to_tier=outcome.to_tier,
        changed=outcome.changed, change_id=outcome.change_id,
    )  # fmt: skip


class VoidIn(Body):
    reason: Reason


class VoidOut(Out):
    voucher: SupportVoucherOut
    stock: Literal["returned", "dup", "not_loaded"] = Field(
        description="returned: stock and budget went back to the live coupon; not_loaded: the coupon is not in "
        "Redis (it counts from the database when loaded)"
    )


@routes.add(
    "POST", "/api/v1/admin/vouchers/{id}/void", access=CUSTOMER_SERVICE, tags=("customers",), body=VoidIn,
    response=VoidOut,
    errors=(errors.VoucherNotFound, errors.VoucherAlreadyVoid, errors.VoucherAlreadyUsed, errors.VoucherExpired),
    summary="Void an issued, unused voucher (audited): its stock, the customer's place under the coupon's "
    "limit and its budget are given back, exactly once",
)  # fmt: skip
async def void_voucher(request: web.Request, body: VoidIn) -> VoidOut:
    outcome = await support.void_voucher(request.app[JOURNEY], path_int(request, "id"), body.reason,
                                         actor_of(request))  # fmt: skip
    return VoidOut(voucher=SupportVoucherOut(**outcome.voucher), stock=outcome.stock)


class GrantIn(Body):
    coupon_id: Id
    reason: Reason


class GrantOut(Out):
    claim_id: str = Field(description="the voucher's id in the customer's wallet")
    code: str
    coupon_id: int
    campaign_id: int
    granted_at: datetime
    manual_grant: Literal[True] = True
    replayed: bool = Field(description="true: this Idempotency-Key was answered before; this is that voucher")


@routes.add(
    "POST", "/api/v1/admin/customers/{id}/vouchers", access=CUSTOMER_SERVICE, tags=("customers",), body=GrantIn,
    response=GrantOut, status=201, also=(200,),
    errors=(errors.NotFound, errors.UnknownCoupon, errors.CampaignNotActive, errors.CouponSoldOut,
            errors.CouponLimitReached, errors.BudgetExhausted),
    summary="Grant a customer one voucher of a coupon by hand, through the grab's stock, per-customer limit and "
    "budget, marked as a manual grant (audited; optional Idempotency-Key)",
)  # fmt: skip
async def grant_voucher(request: web.Request, body: GrantIn) -> GrantOut | web.Response:
    outcome = await support.grant_voucher(
        request.app[JOURNEY], path_int(request, "id"), body.coupon_id, body.reason, actor_of(request),
        idempotency_key(request),
    )  # fmt: skip
    out = GrantOut(
        claim_id=outcome.claim_id, code=outcome.code, coupon_id=outcome.coupon_id, campaign_id=outcome.campaign_id,
        granted_at=outcome.granted_at, replayed=outcome.replayed,
    )  # fmt: skip
    return json_response(out, status=200) if outcome.replayed else out
