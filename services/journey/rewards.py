"""Rewards: what a participation earns, decided once, then delivered.

Deciding happens in the database transaction that joins or completes the participation
(``grant_in_transaction``): points go into the ledger (ref ``reward:<participation>``),
the badge is recorded, each reward coupon becomes a pending RewardGrant row (ref
``reward:<participation>:<coupon>``, unique), and a "reward earned" notification is
queued (key ``reward:<participation>``, see ``services.notify.outbox``). Only the caller
that won the decision (created the participation, or moved it from ``joined`` to
``completed`` with a compare-and-set) calls it, and every write is unique by its ref
besides, so a reward is never granted twice. A points exchange (services.journey.exchange)
writes its own grant, with no participation, in the transaction that debits the points.

Delivering a coupon (``RewardIssuer.issue_pending``) runs after the commit: the grant
goes through ``lua/grant.lua`` on the campaign's coupon keys, the same stock, holders,
budget and claims stream as a grab (the claims worker writes the voucher), with an
idempotency record per grant, so a retry after a crash is a replay. A grant with its own
``face_value`` (a bargain's cut voucher, a red packet's voucher: services/forms) issues a
voucher of that value and takes that much from the budget, not the coupon's face value. A grant Redis
refuses (sold out, limit, budget) is marked ``refused`` with the reason; a refused
exchange gets its points back in that same transaction (ledger ref
``exchange-refund:...``), exactly once whoever notices the refusal (the request or the
worker).

Clawing back (``claw_back``): a refund that takes a completed participation back below
its target, in a campaign whose ``refund_policy`` is ``claw_back`` (the default), reopens
the participation (``completed -> joined``, a compare-and-set: once) and takes back its
reward in the refund's transaction: the reward points (ledger ref
``reward-clawback:<participation>``, as far as the balance allows, like any take-back),
each reward voucher still ``available`` (it becomes ``void``; a used or expired one
stays), and a grant not yet issued (``refused``, reason ``clawed_back``). The badge stays.
Audited (``reward.claw_back``, what was taken and what was not). The reward is decided
once per participation (its refs are unique), so completing the goal again later does not
earn it a second time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.campaigns import CouponTemplate
from models.journey import CustomerBadge, PointsEntry, RewardGrant
from models.participations import Participation
from models.vouchers import Voucher
from services.campaigns import CampaignSnapshot, CouponSnapshot
from services.core import AnyRedis, audit, random_token, text
from services.journey import points
from services.notify import outbox as notify_outbox
from services.notify import reward_text_in, titles_of
from services.stock import RECENT_CLAIMS_KEPT, RECENT_CLAIMS_TTL_MS, CampaignKeys, Stock

log = logging.getLogger("wxcampaign.rewards")

#: How long a grant's idempotency record is kept in Redis (pending grants are retried
#: well within it).
GRANT_RECORD_TTL_SECONDS = 30 * 24 * 3600
#: How grant.lua records a refusal in the grant's record.
REFUSED = "refused:"


def reward_ref(participation_id: int) -> str:
    return f"reward:{participation_id}"


def grant_ref(participation_id: int, template_id: int) -> str:
    """The ref of a participation's reward coupon (what it is unique on)."""
    return f"reward:{participation_id}:{template_id}"


def refund_ref(ref: str) -> str:
    """The ledger ref that gives back the points an exchange (grant ``ref``) took."""
    return "exchange-refund:" + ref.removeprefix("exchange:")


async def grant_in_transaction(
    snap: CampaignSnapshot, participation_id: int, customer_id: int, trigger: str, coupons: tuple[CouponSnapshot, ...]
) -> list[int]:
    """Record a participation's rewards: points, badge, pending coupon grants. Returns
    the ids of the pending grants. Precondition: the caller decided this participation
    earns them (inside its transaction)."""
    async with in_transaction():
        if snap.reward_points:
            await points.add(
                customer_id, snap.reward_points, "campaign_reward", reward_ref(participation_id), campaign_id=snap.id
            )
        if snap.reward_badge:
            try:
                async with in_transaction():
                    await CustomerBadge.create(customer_id=customer_id, badge=snap.reward_badge, campaign_id=snap.id)
            except IntegrityError:
                pass  # already holds this badge
        grant_ids = []
        for coupon in coupons:
            try:
                async with in_transaction():
                    grant = await RewardGrant.create(
                        participation_id=participation_id, ref=grant_ref(participation_id, coupon.id),
                        customer_id=customer_id, campaign_id=snap.id, template_id=coupon.id, trigger=trigger,
                    )  # fmt: skip
                grant_ids.append(grant.id)
            except IntegrityError:
                pass  # already owed
        if snap.reward_points or snap.reward_badge or coupons:
            # The "reward earned" message, in the same transaction: it exists exactly when
            # the reward does, once per participation.
            await notify_outbox.enqueue(
                reward_ref(participation_id), "reward", customer_id,
                {
                    "campaign_id": snap.id,
                    "campaign_title": notify_outbox.title_of(snap.content, snap.default_language),
                    "reward": notify_outbox.reward_text(snap.reward_points, snap.reward_badge, len(coupons)),
                    "points": snap.reward_points, "earned_at": datetime.now(UTC).isoformat(),
                    # The same in each of the campaign's languages (services/notify/languages.py).
                    "campaign_titles": titles_of(snap.content), "default_language": snap.default_language,
                    "reward_texts": {
                        lang: reward_text_in(lang, snap.reward_points, snap.badge_face(lang)[0], len(coupons))
                        for lang in snap.content
                    },
                },
            )  # fmt: skip
        return grant_ids


class RewardIssuer:
    """Issues pending coupon grants through the stock path. One per process."""

    def __init__(self, redis: AnyRedis, stock: Stock) -> None:
        self.redis = redis
        self.stock = stock
        self._grant = redis.register_script((Path(__file__).parent / "grant.lua").read_text())

    async def issue_pending(
        self, grant_ids: list[int] | None = None, limit: int = 200, older_than: float | None = None
    ) -> int:
        """Issue these pending grants (or any pending ones, oldest first, at least
        ``older_than`` seconds old): how many were issued now. Safe to run concurrently
        and repeatedly."""
        query = RewardGrant.filter(status="pending")
        if older_than is not None:
            query = query.filter(created_at__lt=datetime.now(UTC) - timedelta(seconds=older_than))
        if grant_ids is not None:
            if not grant_ids:
                return 0
            query = query.filter(id__in=grant_ids)
        issued = 0
        for grant in await query.order_by("id").limit(limit):
            try:
                issued += await self._issue(grant)
            except Exception:  # one bad grant must not block the rest: it stays pending
                log.exception("issuing reward grant %d failed; it stays pending", grant.id)
        return issued

    async def _issue(self, grant: RewardGrant) -> int:
        keys = CampaignKeys(grant.campaign_id)
        now = datetime.now(UTC)
        reply: list[str] = []
        for attempt in range(2):
            raw = await self._grant(
                keys=[
                    keys.coupon(grant.template_id), keys.holders(grant.template_id), keys.budget, keys.stream,
                    f"{keys.tag}:grant:{grant.id}", keys.recent(grant.customer_id),
                ],
                args=[
                    grant.customer_id, int(now.timestamp() * 1000), random_token(20), random_token(16),
                    grant.template_id, GRANT_RECORD_TTL_SECONDS, RECENT_CLAIMS_TTL_MS, RECENT_CLAIMS_KEPT,
                    # No admin; the grant's own face value, if it has one (a social form's voucher).
                    "", "" if grant.face_value is None else grant.face_value,
                ],
            )  # fmt: skip
            reply = [text(p) for p in raw]
            if reply[0] != "not_loaded" or attempt == 1:
                break
            await self.stock.load_campaign(grant.campaign_id)
        if reply[0] == "dup" and reply[1].startswith(REFUSED):
            reply = [reply[1].removeprefix(REFUSED)]  # decided before: refused, for good
        if reply[0] in ("ok", "dup"):
            claim_id = reply[1].split(":")[0]
            return await RewardGrant.filter(id=grant.id, status="pending").update(status="issued", claim_id=claim_id)
        if reply[0] == "not_loaded":
            # The coupon is gone from the database (deleted before the campaign ran).
            if not await CouponTemplate.filter(id=grant.template_id).exists():
                await self._refuse(grant, "no_coupon")
            return 0
        await self._refuse(grant, reply[0])
        return 0

    async def grant_manual(
        self, *, campaign_id: int, template_id: int, customer_id: int, admin_id: int, key: str
    ) -> tuple[str, str, bool]:
        """One voucher granted by customer service through grant.lua: the same stock,
        per-customer limit and budget as a grab (not the grab window, throttle or
        audience: an admin decided), marked with ``admin_id`` on its claim. ``key`` names
        the attempt (an Idempotency-Key): the same key again replays the first answer.
        Returns (status, record, replayed): status "ok" with the record
        "claim:code:at_ms", or the refusal ("limit", "sold_out", "budget", "not_loaded")
        with an empty record."""
        keys = CampaignKeys(campaign_id)
        reply: list[str] = []
        for attempt in range(2):
            raw = await self._grant(
                keys=[
                    keys.coupon(template_id), keys.holders(template_id), keys.budget, keys.stream,
                    keys.manual(admin_id, key), keys.recent(customer_id),
                ],
                args=[
                    customer_id, int(datetime.now(UTC).timestamp() * 1000), random_token(20), random_token(16),
                    template_id, GRANT_RECORD_TTL_SECONDS, RECENT_CLAIMS_TTL_MS, RECENT_CLAIMS_KEPT, admin_id,
                ],
            )  # fmt: skip
            reply = [text(p) for p in raw]
            if reply[0] != "not_loaded" or attempt == 1:
                break
            await self.stock.load_campaign(campaign_id)
        if reply[0] == "dup":
            if reply[1].startswith(REFUSED):
                return reply[1].removeprefix(REFUSED), "", True
            return "ok", reply[1], True
        if reply[0] == "ok":
            return "ok", reply[1], False
        return reply[0], "", False

    async def _refuse(self, grant: RewardGrant, reason: str) -> None:
        """Mark a pending grant refused (a compare-and-set) and, for an exchange, give the
        points back in the same transaction: exactly once, whoever gets here first."""
        async with in_transaction():
            won = await RewardGrant.filter(id=grant.id, status="pending").update(status="refused", refusal=reason)
            if won and grant.trigger == "exchange":
                paid = await PointsEntry.get_or_none(ref=grant.ref)
                if paid is not None and paid.delta < 0:
                    await points.add(
                        grant.customer_id, -paid.delta, "exchange_refund", refund_ref(grant.ref),
                        campaign_id=grant.campaign_id,
                    )  # fmt: skip

    async def claim_of(self, grant: RewardGrant) -> tuple[str, str, int] | None:
        """An issued grant's voucher: (claim id, code, issued at in ms), from the grant's
        record in Redis (kept GRANT_RECORD_TTL_SECONDS), else from the database once the
        claims worker wrote it. None when neither has it (yet)."""
        record = await self.redis.get(f"{CampaignKeys(grant.campaign_id).tag}:grant:{grant.id}")
        if record is not None and not text(record).startswith(REFUSED):
            claim_id, code, at = text(record).split(":")
            return claim_id, code, int(at)
        if grant.claim_id is None:
            return None
        voucher = await Voucher.get_or_none(claim_id=grant.claim_id)
        if voucher is None:
            return None
        return voucher.claim_id, voucher.code, int(voucher.issued_at.timestamp() * 1000)


async def issue_pending_forever(issuer: RewardIssuer, interval: float, grace_seconds: float = 30.0) -> None:
    """The safety net: issue grants a crashed request left pending (``grace_seconds`` old,
    so requests in flight issue their own). Stops on cancellation."""
    me = asyncio.current_task()
    while me is None or not me.cancelling():
        try:
            await issuer.issue_pending(older_than=grace_seconds)
        except Exception:
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from None
            log.exception("reward grants pass failed")
        await asyncio.sleep(interval)
    raise asyncio.CancelledError


def clawback_ref(participation_id: int) -> str:
    """The ledger ref that takes back a participation's reward points."""
    return f"reward-clawback:{participation_id}"


async def claw_back(stock: Stock, participation_id: int, customer_id: int, cause: str) -> dict[str, object] | None:
    """Reopen a completed participation and take back its unused reward (see the module
    docstring); None when it was not completed (nothing to do, or done before). ``cause``
    names the refund (its progress ref). Precondition: inside the refund's transaction,
    the participation's progress now below its target and its campaign's policy
    ``claw_back``."""
    async with in_transaction():
        won = await Participation.filter(id=participation_id, status="completed").update(
            status="joined", completed_at=None
        )
        if not won:
            return None
        taken = await points.take_back(customer_id, reward_ref(participation_id), "reward_clawback",
                                       clawback_ref(participation_id))  # fmt: skip
        voided: list[int] = []
        kept: list[int] = []
        refused: list[int] = []
        for grant in await RewardGrant.filter(participation_id=participation_id, trigger="completion").order_by("id"):
            if grant.status == "pending":
                # The issuer's own compare-and-set on "pending" makes one of us win.
                if await RewardGrant.filter(id=grant.id, status="pending").update(
                    status="refused", refusal="clawed_back"
                ):
                    refused.append(grant.id)
                    continue
                grant = await RewardGrant.get(id=grant.id)
            if grant.status != "issued" or grant.claim_id is None:
                continue
            voucher = await _voucher_of(stock, grant)
            if voucher is None:
                continue
            if await Voucher.filter(id=voucher.id, status="available").update(status="void"):
                voided.append(voucher.id)
            else:
                kept.append(voucher.id)  # used (or expired) meanwhile: not ours to take
        result: dict[str, object] = {
            "status": "joined", "cause": cause, "points_taken": -taken.delta if taken else 0,
            "vouchers_voided": voided, "vouchers_kept": kept, "grants_refused": refused,
        }  # fmt: skip
        await audit.record(
            audit.Actor.system(), "reward.claw_back", "participation", participation_id, {"status": "completed"},
            result,
        )  # fmt: skip
        return result


async def _voucher_of(stock: Stock, grant: RewardGrant) -> Voucher | None:
    """An issued grant's voucher, persisted now if the claims worker has not yet written
    it (it is in the customer's recent claims), so it can be voided."""
    from services.stock import ClaimEntry, persist

    voucher = await Voucher.get_or_none(claim_id=grant.claim_id)
    if voucher is not None:
        return voucher
    recent = await stock.recent_claims(grant.customer_id, {grant.campaign_id})
    entry = next((r for r in recent if r["claim"] == grant.claim_id), None)
    if entry is None:
        log.error("reward grant %d: voucher of claim %s not found to claw back", grant.id, grant.claim_id)
        return None
    template = await CouponTemplate.get(id=grant.template_id)
    await persist(
        [
            ClaimEntry(
                entry_id="", claim_id=str(entry["claim"]), code=str(entry["code"]), template_id=template.id,
                customer_id=grant.customer_id,
                face_value=template.face_value if grant.face_value is None else grant.face_value,
                grabbed_at=datetime.fromtimestamp(int(entry["at"]) / 1000, UTC),
            )
        ]
    )  # fmt: skip
    return await Voucher.get_or_none(claim_id=grant.claim_id)
