"""Joining campaigns and reading progress: the customer's side of a campaign.

``Journey`` is the per-process runtime (Redis scripts, the campaign catalog, the reward
issuer); the functions take it as their first argument.

Join, in order: an existing participation is returned as is (idempotent); the campaign
must be visible, running and in its window (``campaign_not_active``), offered in the mini
program and, when targeted, to this customer (``not_eligible`` with ``details.reason``),
not exclusive with one the customer takes part in (``exclusive_conflict``: the database
first, then, atomically against a grab or join in flight, the customer's exclusivity
marker in Redis, ``services.stock.exclusive``, held from here to the insert); with a
budget cap, its budget not spent (``budget_exhausted``: nothing left of it in Redis, or
the database when Redis does not have it, read by ``services.feed.budgets_spent`` as the
feed reads it); a capped
campaign then takes a seat in Redis (``lua/join.lua``: a set of participant ids under the
campaign's hash tag, so the same customer takes one seat and the cap is never exceeded
at any concurrency; ``campaign_full``); finally the participation row is inserted (the
unique (campaign, customer) pair makes concurrent joins of one customer one row) with the
join rewards in the same transaction.

The seat set is rebuilt from the database whenever Redis does not have it (a "loaded"
marker tells; one process rebuilds under a lock while the others wait), and on demand
with ``rebuild_seats`` after a Redis loss.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.journey import ProgressEntry
from models.participations import Participation
from services.audience import rules as audience
from services.campaigns import CampaignCatalog, CampaignSnapshot, exclusivity
from services.core import AnyRedis, SeatKeys, call_script, column, errors, newest_first, text
from services.feed import budgets_spent, campaign_changed, catalog_version, viewer_changed
from services.journey.rewards import RewardIssuer, grant_in_transaction
from services.stock import Stock

#: The channel customers join from.
CUSTOMER_CHANNEL = "miniprogram"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
#: How long a join waits for another process rebuilding the seat set, at most.
SEAT_LOAD_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class JourneyPolicy:
    #: Points per yuan (100 fen) of a purchase; 0 gives none.
    points_per_yuan: int = 1
    #: Seconds an integration's X-Timestamp may differ from the server's clock.
    integration_max_skew: int = 300
    #: Days after joining a campaign in which a customer's purchase is attributed to it
    #: (services.activity.attribution); 0: only orders a voucher was redeemed on.
    attribution_window_days: int = 7


class Journey:
    """Per-process runtime of the customer journey."""

    def __init__(self, redis: AnyRedis, stock: Stock, policy: JourneyPolicy | None = None) -> None:
        self.redis = redis
        self.stock = stock
        self.policy = policy or JourneyPolicy()
        self.catalog = CampaignCatalog()
        self.rewards = RewardIssuer(redis, stock)
        self._seen_version = 0
        self._join = redis.register_script((Path(__file__).parent / "join.lua").read_text())

    # --- cached campaign data ----------------------------------------------------

    async def sync_catalog(self) -> None:
        """Drop cached snapshots if an admin changed a campaign since we last looked
        (one Redis GET)."""
        version = await catalog_version(self.redis)
        if version != self._seen_version:
            self._seen_version = version
            self.catalog.forget()

    async def campaign_changed(self, campaign_id: int) -> None:
        """Call after an admin changed a campaign (content, rules, state, exclusivity)."""
        # The version bump reaches this process's feed index too (it reloads the campaign).
        await campaign_changed(self.redis, campaign_id)
        self.catalog.forget(campaign_id)

    # --- seats ---------------------------------------------------------------------

    async def load_seats(self, campaign_id: int, *, force: bool = False) -> int | None:
        """Rebuild the seat set from the participations table under a lock. Returns the
        number of seats, or None when another process holds the lock."""
        keys = SeatKeys(campaign_id)
        token = secrets.token_hex(8)
        if not await self.redis.set(keys.lock, token, nx=True, px=30_000):
            return None
        try:
            if not force and await self.redis.exists(keys.loaded):
                return int(await self.redis.scard(keys.members))
            ids = await column(Participation.filter(campaign_id=campaign_id), "customer_id")
            await self.redis.delete(keys.loaded, keys.members)
            for start in range(0, len(ids), 5000):
                await self.redis.sadd(keys.members, *ids[start : start + 5000])
            await self.redis.set(keys.loaded, "1")
            return len(ids)
        finally:
            await self.redis.eval(_RELEASE, 1, keys.lock, token)

    async def rebuild_seats(self, campaign_id: int) -> int:
        """Rebuild after a Redis loss (waits for a rebuild in progress elsewhere)."""
        for _ in range(int(SEAT_LOAD_WAIT_SECONDS / 0.02)):
            count = await self.load_seats(campaign_id, force=True)
            if count is not None:
                return count
            await asyncio.sleep(0.02)
        raise errors.RedisUnavailable("the participant set is being rebuilt; retry")

    async def seats_taken(self, campaign_id: int) -> int:
        keys = SeatKeys(campaign_id)
        if await self.redis.exists(keys.loaded):
            return int(await self.redis.scard(keys.members))
        return await Participation.filter(campaign_id=campaign_id).count()

    async def take_seat(self, snap: CampaignSnapshot, customer_id: int) -> str:
        """``ok`` (a new seat), ``dup`` (already holds one); raises campaign_full."""
        assert snap.participant_cap is not None
        keys = SeatKeys(snap.id)
        deadline = asyncio.get_running_loop().time() + SEAT_LOAD_WAIT_SECONDS
        while True:
            raw = await call_script(self._join, [keys.members, keys.loaded], [customer_id, snap.participant_cap])
            reply = [text(p) for p in raw]
            if reply[0] != "not_loaded":
                break
            if await self.load_seats(snap.id) is None:
                if asyncio.get_running_loop().time() > deadline:
                    raise errors.RedisUnavailable("the participant set is being rebuilt; retry")
                await asyncio.sleep(0.02)
        if reply[0] == "full":
            raise errors.CampaignFull(details={"participant_cap": snap.participant_cap})
        return reply[0]

    async def release_seat(self, campaign_id: int, customer_id: int) -> None:
        await self.redis.srem(SeatKeys(campaign_id).members, customer_id)


# --- who may join -------------------------------------------------------------------


async def visible_snapshot(journey: Journey, campaign_id: int, now: datetime) -> CampaignSnapshot:
    """The campaign as customers see it; 404 when they may not see it at all."""
    await journey.sync_catalog()
    snap = await journey.catalog.get(campaign_id)
    if snap is None or snap.phase(now) is None:
        raise errors.NotFound(f"no campaign {campaign_id}")
    return snap


async def in_audience(snap: CampaignSnapshot, customer_id: int) -> bool:
    if not snap.targeted:
        return True
    return await audience.matches(snap.audience_rule, customer_id)


async def exclusive_conflicts(journey: Journey, snap: CampaignSnapshot, customer_id: int) -> list[int]:
    if not snap.exclusive_with:
        return []
    found = set(await exclusivity.conflicts_for(customer_id, snap.id))
    found |= await journey.stock.recent_campaigns(customer_id, set(snap.exclusive_with))
    return sorted(found)


def phase_refusal(snap: CampaignSnapshot, now: datetime) -> errors.AppError | None:
    phase = snap.phase(now)
    if phase == "running":
        return None
    details: dict[str, object] = {"status": snap.status, "phase": phase}
    if phase == "teaser":
        details["starts_at"] = snap.starts_at.isoformat()
        return errors.CampaignNotActive("the campaign has not started yet", details=details)
    if phase == "ended":
        return errors.CampaignNotActive("the campaign has ended", details=details)
    return errors.CampaignNotActive(details=details)


def audience_refusal() -> errors.AppError:
    return errors.NotEligible(details={"reason": "audience"})


async def join_refusal(
    journey: Journey, snap: CampaignSnapshot, customer_id: int, now: datetime, *, check_cap: bool,
    check_audience: bool = True,
) -> errors.AppError | None:  # fmt: skip
    """Why this customer may not join now (the first reason, in the order join checks
    them), or None."""
    refusal = phase_refusal(snap, now)
    if refusal is not None:
        return refusal
    if CUSTOMER_CHANNEL not in snap.channels:
        return errors.NotEligible("the campaign is not offered in the mini program", details={"reason": "channel"})
    if check_audience and not await in_audience(snap, customer_id):
        return audience_refusal()
    conflicts = await exclusive_conflicts(journey, snap, customer_id)
    if conflicts:
        return errors.ExclusiveConflict(details={"campaign_ids": conflicts})
    if snap.budget_limit is not None and await budgets_spent(journey.redis, [snap]):
        # Nothing more can be given out: joining would promise what the grab then refuses.
        # Before the seat, which join takes after these checks.
        return errors.BudgetExhausted()  # as a grab says it (the limit cached here may be old)
    if check_cap and snap.participant_cap is not None:
        if await journey.seats_taken(snap.id) >= snap.participant_cap:
            return errors.CampaignFull(details={"participant_cap": snap.participant_cap})
    return None


async def join(journey: Journey, campaign_id: int, customer_id: int, now: datetime) -> tuple[Participation, bool]:
    """Join (see the module docstring). Returns the participation and whether this call
    created it."""
    snap = await visible_snapshot(journey, campaign_id, now)
    existing = await Participation.get_or_none(campaign_id=campaign_id, customer_id=customer_id)
    if existing is not None:
        return existing, False
    refusal = await join_refusal(journey, snap, customer_id, now, check_cap=False)
    if refusal is not None:
        raise refusal
    if snap.exclusive_with:
        # The database check above does not see a grab or join of an exclusive campaign
        # in flight at this moment; the customer's marker does (services.stock.exclusive).
        async with journey.stock.exclusive.taking_part(customer_id, snap.id, snap.exclusive_with):
            participation, created, grant_ids = await _enter(journey, snap, customer_id)
    else:
        participation, created, grant_ids = await _enter(journey, snap, customer_id)
    if not created:
        return participation, False
    await viewer_changed(journey.redis, customer_id)  # the feed shows "you joined" at once
    await journey.rewards.issue_pending(grant_ids)
    return participation, True


async def _enter(journey: Journey, snap: CampaignSnapshot, customer_id: int) -> tuple[Participation, bool, list[int]]:
    """Take a seat (capped campaigns) and insert the participation with its join
    rewards. Returns the participation, whether this call created it, and the grants to
    issue after the commit. Precondition: the customer may join (join_refusal passed)."""
    campaign_id = snap.id
    seat = await journey.take_seat(snap, customer_id) if snap.participant_cap is not None else None
    grant_ids: list[int] = []
    try:
        async with in_transaction():
            participation = await Participation.create(campaign_id=campaign_id, customer_id=customer_id)
            if snap.grants_on_join():
                grant_ids = await grant_in_transaction(snap, participation.id, customer_id, "join", snap.join_coupons())
    except IntegrityError:
        # Joined concurrently by another request of the same customer: that one won.
        existing = await Participation.get_or_none(campaign_id=campaign_id, customer_id=customer_id)
        if existing is None:
            raise
        return existing, False, []
    except BaseException:
        if seat == "ok":
            await journey.release_seat(campaign_id, customer_id)
        raise
    return participation, True, grant_ids


# --- progress -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    at: datetime
    source: str
    ref: str
    delta: int
    value_after: int


@dataclass
class ProgressView:
    campaign_id: int
    participation_id: int
    status: str
    joined_at: datetime
    completed_at: datetime | None
    metric: str | None
    value: int
    target: int | None
    percent: int | None
    remaining: int | None
    deadline: datetime
    history: list[Step] = field(default_factory=list)


def progress_view(snap: CampaignSnapshot, p: Participation, history: list[ProgressEntry] | None = None) -> ProgressView:
    target = snap.goal_target if snap.goal_metric else None
    if target:
        percent: int | None = 100 if p.status == "completed" else min(100, max(0, p.progress) * 100 // target)
        remaining: int | None = 0 if p.status == "completed" else max(0, target - p.progress)
    else:
        percent = remaining = None
    return ProgressView(
        campaign_id=snap.id, participation_id=p.id, status=p.status, joined_at=p.joined_at,
        completed_at=p.completed_at, metric=snap.goal_metric, value=p.progress, target=target, percent=percent,
        remaining=remaining, deadline=snap.deadline(p.joined_at),
        history=[Step(e.occurred_at, e.source, e.ref, e.delta, e.value_after) for e in history or []],
    )  # fmt: skip


async def progress_of(journey: Journey, campaign_id: int, customer_id: int, history_limit: int = 100) -> ProgressView:
    participation = await Participation.get_or_none(campaign_id=campaign_id, customer_id=customer_id)
    snap = await journey.catalog.get(campaign_id)
    if participation is None or snap is None:
        raise errors.NotFound("you have not joined this campaign")
    steps = await ProgressEntry.filter(participation_id=participation.id).order_by("-id").limit(history_limit)
    return progress_view(snap, participation, list(reversed(steps)))


async def my_campaigns(
    journey: Journey, customer_id: int, status: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[CampaignSnapshot, ProgressView]], str | None]:
    """The customer's participations, newest first, with their campaigns."""
    query = Participation.filter(customer_id=customer_id)
    if status is not None:
        query = query.filter(status=status)
    page, nxt = await newest_first(query, cursor, limit)
    snaps = await journey.catalog.get_many([p.campaign_id for p in page])
    out = []
    for p in page:
        snap = snaps.get(p.campaign_id)
        if snap is not None:
            out.append((snap, progress_view(snap, p)))
    return out, nxt
