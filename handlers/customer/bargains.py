"""Bargains and assists: start one, help a friend's, read it, claim its reward."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.request_meta import client_address
from server.access import CUSTOMER
from server.keys import BARGAINS, POLICIES, REDIS, WECHAT
from server.routing import RouteTable, json_response, path_int, principal_of
from services.core import Body, Id, Out, errors
from services.forms import BargainView, screen

routes = RouteTable()


class StartBargainIn(Body):
    campaign_id: Id


class CutOut(Out):
    seq: int = Field(description="1 for the first help")
    helper_id: int
    nickname: str | None = Field(description="the helper's nickname (null: none given)")
    cut: int = Field(description="fen cut by this help (0 in an assist)")
    at: datetime


class BargainOut(Out):
    id: int
    campaign_id: int
    customer_id: int = Field(description="who started it")
    mode: Literal["bargain", "assist", "red_packet"]
    start_price: int = Field(description="fen (0 in an assist)")
    floor_price: int = Field(description="fen (0 in an assist)")
    price: int = Field(description="fen now: start_price minus every cut so far (red_packet: what is left to expand)")
    value: int = Field(description="red_packet: the packet's points now (initial value plus every increment); "
                       "the others: the price")  # fmt: skip
    helpers: int = Field(description="helps so far")
    helpers_needed: int | None = Field(description="the helps that finish it; null: the floor does")
    finished: bool = Field(description="at the floor, or helpers_needed reached: the reward can be claimed")
    expired: bool = Field(description="its time ran out before it finished")
    expires_at: datetime
    seconds_left: int
    claimed_at: datetime | None
    seed: str | None = Field(
        description="the secret the cuts were drawn from, once finished or expired: replays every cut (docs/forms.md)"
    )
    cuts: list[CutOut] = Field(description="every help, first first")


class StartBargainOut(Out):
    bargain: BargainOut
    created: bool = Field(description="true when started by this call (201); false: your bargain from before (200)")


class HelpOut(Out):
    bargain_id: int
    seq: int = Field(description="this help's number in the bargain (1 for the first)")
    cut: int = Field(description="fen this help cut (0 in an assist)")
    price: int = Field(description="fen after this help")
    finished: bool = Field(description="this help finished the bargain")


class RewardVoucherOut(Out):
    face_value: int = Field(description="fen: the reduction reached (cut_voucher) or the packet's value (red packet)")
    coupon_id: int = Field(description="the campaign's coupon the voucher is one of (its validity, stores)")
    status: Literal["pending", "issued", "refused"] = Field(
        description="issued: in the wallet (GET /api/v1/me/vouchers); pending: being issued; refused: see refusal"
    )
    refusal: str | None = Field(description="why it was refused: `sold_out`, `limit`, `budget` (the campaign budget "
                                "left is below its value)")  # fmt: skip


class ClaimOut(Out):
    bargain: BargainOut
    claimed: bool = Field(description="true when claimed by this call (201); false: claimed before (200)")
    voucher: RewardVoucherOut | None = Field(
        description="the voucher the claim pays (bargain.reward `cut_voucher`, red_packet.claim_as `voucher`); "
        "null when it pays the campaign's own reward or points"
    )


def _out(view: BargainView) -> BargainOut:
    b = view.bargain
    over = view.finished or view.expired
    return BargainOut(
        id=b.id, campaign_id=b.campaign_id, customer_id=b.customer_id, mode=b.mode,  # type: ignore[arg-type]
        start_price=b.start_price, floor_price=b.floor_price, price=view.price, value=view.value, helpers=view.helpers,
        helpers_needed=b.helpers_needed or None, finished=view.finished, expired=view.expired,
        expires_at=b.expires_at, seconds_left=view.seconds_left, claimed_at=b.claimed_at,
        seed=b.seed if over else None, cuts=[CutOut(**c.__dict__) for c in view.cuts],
    )  # fmt: skip


@routes.add(
    "POST", "/api/v1/bargains", access=CUSTOMER, tags=("forms",), body=StartBargainIn, response=StartBargainOut,
    status=201, also=(200,),
    summary="Start your bargain (or assist) in a campaign: one per customer and campaign (201 the first time, 200 "
    "with the same bargain after); joins the campaign",
    errors=(errors.NotFound, errors.NotABargain, errors.CampaignNotActive, errors.NotEligible,
            errors.ExclusiveConflict, errors.CampaignFull, errors.BudgetExhausted),
)  # fmt: skip
async def start_bargain(request: web.Request, body: StartBargainIn) -> StartBargainOut | web.Response:
    bargains = request.app[BARGAINS]
    now = datetime.now(UTC)
    bargain, created = await bargains.start(body.campaign_id, principal_of(request).id, now)
    out = StartBargainOut(bargain=_out(await bargains.view(bargain.id, now)), created=created)
    return out if created else json_response(out, status=200)


@routes.add(
    "POST", "/api/v1/bargains/{id}/help", access=CUSTOMER, tags=("forms",), response=HelpOut, status=201,
    summary="Help a friend's bargain: one cut drawn from the campaign's range (docs/forms.md), atomically",
    errors=(errors.NotFound, errors.RiskRefused, errors.CampaignNotActive, errors.OwnBargain, errors.AlreadyHelped,
            errors.HelpLimitReached, errors.BargainFinished, errors.BargainExpired),
)  # fmt: skip
async def help_bargain(request: web.Request) -> HelpOut:
    bargain_id = path_int(request, "id")
    helper = principal_of(request).id
    app = request.app
    await screen(
        redis=app[REDIS], wechat=app[WECHAT], policy=app[POLICIES].risk, customer_id=helper,
        client_ip=client_address(request),
    )  # fmt: skip
    result = await app[BARGAINS].help(bargain_id, helper, datetime.now(UTC))
    return HelpOut(**result.__dict__)


@routes.add(
    "GET", "/api/v1/bargains/{id}", access=CUSTOMER, tags=("forms",), response=BargainOut,
    summary="A bargain (anyone signed in can see a shared one): price now, cuts with the helpers' nicknames, time "
    "left",
    errors=(errors.NotFound,),
)  # fmt: skip
async def get_bargain(request: web.Request) -> BargainOut:
    return _out(await request.app[BARGAINS].view(path_int(request, "id"), datetime.now(UTC)))


@routes.add(
    "POST", "/api/v1/bargains/{id}/claim", access=CUSTOMER, tags=("forms",), response=ClaimOut, status=201,
    also=(200,),
    summary="Claim the reward of your finished bargain (the campaign's coupons, points, badge; or a voucher worth "
    "the cut; a red packet's points or voucher), exactly once: 201 the first time, 200 after",
    errors=(errors.NotFound, errors.BargainNotFinished),
)  # fmt: skip
async def claim_bargain(request: web.Request) -> ClaimOut | web.Response:
    bargains = request.app[BARGAINS]
    bargain_id = path_int(request, "id")
    view, claimed = await bargains.claim(bargain_id, principal_of(request).id, datetime.now(UTC))
    grant = await bargains.reward_voucher(bargain_id)
    voucher = None
    if grant is not None:
        # Validated, not cast: the grant's status column is a plain string in the database.
        voucher = RewardVoucherOut.model_validate({
            "face_value": grant.face_value or 0, "coupon_id": grant.template_id, "status": grant.status,
            "refusal": grant.refusal,
        })  # fmt: skip
    out = ClaimOut(bargain=_out(view), claimed=claimed, voucher=voucher)
    return out if claimed else json_response(out, status=200)
