"""A customer grabbing a coupon: eligibility from cached data, then the atomic script.

With an ``Idempotency-Key`` the first answer is kept (24 h) and answered again to a retry
with that key: a voucher (``replayed``: the handler sends ``Idempotent-Replayed: true``)
or the same refusal, whether the script decided it (it records its refusals) or the
checks before it did (recorded here). A rate-limited request was not judged: its retry is.

A coupon of a campaign with exclusivity links is grabbed under the customer's
exclusivity marker (``services.stock.exclusive``): the database check below refuses what
is already known, the marker what is in flight at the same moment.

A coupon of a campaign under a running experiment (``services.experiments``) is grabbed
from the customer's arm's share of its stock (``services.stock.arms``): the arm is the
customer's sticky assignment, their exposure logged (surface ``grab``) if it is the
first; a customer of the holdout is refused (``experiment_holdout``). Campaigns without
a running experiment pay one dictionary look-up for this."""

from __future__ import annotations

from datetime import UTC, datetime

from models.participations import Participation
from models.vouchers import Voucher
from services.core import column, errors
from services.experiments import Experiments
from services.stock.arms import share_field
from services.stock.coupon_cache import CouponCache, CouponInfo
from services.stock.gate import Claim, GrabPolicy, Stock, replay

#: Campaign states whose coupons are in Redis; the script decides the exact window.
GRABBABLE = frozenset({"scheduled", "active"})


async def _exclusive_conflicts(info: CouponInfo, customer_id: int, stock: Stock) -> list[int]:
    """Campaigns exclusive with this one the customer already takes part in: joined, holds
    a persisted voucher of, or grabbed from moments ago (not yet persisted). Only
    campaigns with exclusivity links pay for these look-ups."""
    others = info.exclusive_with
    joined = await column(Participation.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id")
    held = await column(Voucher.filter(customer_id=customer_id, campaign_id__in=others), "campaign_id")
    recent = await stock.recent_campaigns(customer_id, set(others))
    return sorted({*joined, *held, *recent})


async def grab(
    cache: CouponCache,
    stock: Stock,
    coupon_id: int,
    customer_id: int,
    idempotency_key: str | None,
    policy: GrabPolicy,
    experiments: Experiments | None = None,
) -> tuple[CouponInfo, Claim]:
    """Grab one voucher of ``coupon_id`` (see the module docstring). Raises the refusal as
    an AppError. With an ``idempotency_key`` the first answer, a voucher or a refusal, is
    answered again (a claim with ``replayed``, or the same refusal raised).
    ``experiments``: the process's running experiments (None: the campaign's stock is
    grabbed as if none ran, for callers outside a server)."""
    info = await cache.get(coupon_id)
    if idempotency_key is not None:
        # Before eligibility: a replay answers what was answered, whatever changed since.
        first = await stock.first_answer(info, customer_id, idempotency_key)
        if first is not None:
            return info, replay(first, info)
    try:
        return info, await _grab(info, stock, customer_id, idempotency_key, policy, experiments)
    except _DecidedHere as decided:
        refusal = decided.refusal
        if idempotency_key is not None:
            first = await stock.remember_refusal(info, customer_id, idempotency_key, refusal)
            if first is not None:  # another request with this key answered first
                return info, replay(first, info)
        raise refusal from None


class _DecidedHere(Exception):
    """A refusal decided before the grab script (which records its own)."""

    def __init__(self, refusal: errors.AppError) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


async def _arm_share(info: CouponInfo, customer_id: int, experiments: Experiments) -> str:
    """The customer's arm share under the campaign's running experiment ("" when in no
    arm). Raises experiment_holdout for the holdout. Precondition: an experiment runs on
    the campaign (per the process's view)."""
    now = datetime.now(UTC)
    assigned = (await experiments.expose(customer_id, (info.campaign_id,), "grab", now)).get(info.campaign_id)
    if assigned is None:
        return ""
    if assigned.holdout:
        details = {"campaign_id": info.campaign_id, "experiment_id": assigned.experiment_id}
        raise _DecidedHere(errors.ExperimentHoldout(details=details))
    # Hot coupons are not split (services.stock.arms): their grab takes no share.
    return share_field(assigned.experiment_id, assigned.arm) if info.stock_buckets <= 1 else ""


async def _grab(
    info: CouponInfo, stock: Stock, customer_id: int, idempotency_key: str | None, policy: GrabPolicy,
    experiments: Experiments | None,
) -> Claim:  # fmt: skip
    try:
        _eligible(info)
    except errors.AppError as exc:
        raise _DecidedHere(exc) from None
    share = ""
    if experiments is not None and info.campaign_id in await experiments.running():
        share = await _arm_share(info, customer_id, experiments)
    if info.exclusive_with:
        conflicts = await _exclusive_conflicts(info, customer_id, stock)
        if conflicts:
            raise _DecidedHere(errors.ExclusiveConflict(details={"campaign_ids": conflicts}))
        try:
            lease = await stock.exclusive.reserve(customer_id, info.campaign_id, info.exclusive_with)
        except errors.ExclusiveConflict as exc:
            raise _DecidedHere(exc) from None
        async with stock.exclusive.settling(lease):
            return await stock.grab(info, customer_id, idempotency_key, policy, datetime.now(UTC), share)
    return await stock.grab(info, customer_id, idempotency_key, policy, datetime.now(UTC), share)


def _eligible(info: CouponInfo) -> None:
    if info.reward_only:
        raise errors.NotEligible("this coupon is a campaign's reward, not grabbed", details={"reason": "reward_only"})
    if info.campaign_status not in GRABBABLE:
        raise errors.CampaignNotActive(details={"status": info.campaign_status})
