"""Bargain (砍价) and assist (助力): a customer starts one, friends help it.

A bargain's price starts at the campaign's ``start_price``; each help cuts it by a draw
from the campaign's range until it reaches ``floor_price`` (or ``helpers_needed`` helps
were made); an assist only counts helps, up to ``helpers_needed``. The owner then claims
the reward once: the campaign's own (its coupons, points, badge), or with ``reward``
``cut_voucher`` one voucher worth the reduction reached; a red packet pays its value as
points, or with ``claim_as`` ``voucher`` as one voucher of that many fen. Such a voucher
is a reward grant with its own face value (ref ``bargain:<id>``, unique) issued through
the grant script like every reward coupon: the campaign coupon's stock, the campaign's
budget (it takes the voucher's value), the claims stream.

Each help is decided and applied by one Lua script (``bargain_help.lua``) on keys of
the campaign's hash tag: the bargain's hash (price, count, rules, seed), its helpers
set, its cuts list, the campaign's helps-per-helper hash, and the campaign's decisions
stream, which the script appends to in the same step. Concurrent helpers therefore
never lose a cut, never conflict, the price never goes below the floor, a helper helps
a bargain once and at most ``help_limit`` bargains of a campaign. ``BargainWorker``
writes the stream into ``bargain_cuts`` (unique per bargain and sequence number: a
replayed entry is a no-op) and ``reconcile`` rebuilds the Redis state from the
database. The transaction that records a bargain's finish (``finished_at``) also queues
its owner's ``bargain_result`` message (key ``bargain:<id>:finished``: once).

The draw (docs/forms.md): the first 48 bits of ``sha1(seed:seq:k)``, the smallest
``k`` whose value falls below the largest multiple of the span, taken modulo the span.
Every cut row records ``lo``, ``hi``, the value and ``k``; with the bargain's seed
(shown once it is finished) anyone replays it (``replay_cut``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis import exceptions as redis_errors
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from models.bargains import Bargain, BargainCut
from models.campaigns import Campaign
from models.customers import Customer
from models.journey import RewardGrant
from models.participations import Participation
from services.campaigns import CampaignSnapshot
from services.core import AnyRedis, call_script, campaign_tag, errors, run_to_end, text
from services.journey import Journey, grant_in_transaction, join, phase_refusal, points, visible_snapshot
from services.notify import outbox as notify_outbox

log = logging.getLogger("wxcampaign.bargains")

#: The campaign types that are bargains (services.campaigns.spec.BARGAIN_TYPES), and the
#: expanding red packet, which is one whose price is what is left to expand.
BARGAIN_TYPES = frozenset({"bargain", "assist", "red_packet"})
#: The set of bargain decision streams the worker reads (one per campaign).
STREAMS_REGISTRY = "forms:bargain:streams"
CONSUMER_GROUP = "persist"
#: How long a bargain's Redis state outlives its deadline (its page still reads it).
KEEP_AFTER_EXPIRY = timedelta(days=7)
#: 2**48: the draw's range (the first 12 hex digits of a SHA-1).
DRAW_RANGE = 1 << 48

_LOAD_HELPS = """
if redis.call('exists', KEYS[2]) == 1 then return 0 end
redis.call('del', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('set', KEYS[2], '1', 'pxat', ARGV[1])
if redis.call('exists', KEYS[1]) == 1 then redis.call('pexpireat', KEYS[1], ARGV[1]) end
return 1
"""


# --- keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BargainKeys:
    """A bargain's keys, and its campaign's, all under the campaign's hash tag."""

    campaign_id: int
    bargain_id: int

    @property
    def state(self) -> str:
        return f"{campaign_tag(self.campaign_id)}:bargain:{self.bargain_id}"

    @property
    def helpers(self) -> str:
        return f"{self.state}:helpers"

    @property
    def cuts(self) -> str:
        return f"{self.state}:cuts"

    @property
    def helps(self) -> str:
        """Per helper: how many bargains of the campaign they helped (``help_limit``)."""
        return helps_key(self.campaign_id)

    @property
    def helps_loaded(self) -> str:
        return helps_key(self.campaign_id) + ":loaded"

    @property
    def stream(self) -> str:
        return stream_key(self.campaign_id)

    def all(self) -> list[str]:
        return [self.state, self.helpers, self.cuts, self.helps, self.helps_loaded, self.stream]


def helps_key(campaign_id: int) -> str:
    return f"{campaign_tag(campaign_id)}:bargain-helps"


def stream_key(campaign_id: int) -> str:
    return f"{campaign_tag(campaign_id)}:bargain-helps:stream"


# --- the draw ----------------------------------------------------------------------------


def draw_value(seed: str, seq: int, attempt: int) -> int:
    """The 48-bit value of draw ``attempt`` (k) of help ``seq`` (as bargain_help.lua)."""
    return int(hashlib.sha1(f"{seed}:{seq}:{attempt}".encode()).hexdigest()[:12], 16)


def uniform(seed: str, seq: int, lo: int, hi: int) -> tuple[int, int, int]:
    """A uniform integer in [lo, hi] by rejection: (value, 48-bit draw, attempts rejected)."""
    span = hi - lo + 1
    limit = DRAW_RANGE // span * span
    attempt = 0
    while True:
        u = draw_value(seed, seq, attempt)
        if u < limit:
            return lo + u % span, u, attempt
        attempt += 1


@dataclass(frozen=True)
class Draw:
    cut: int
    lo: int
    hi: int
    u: int
    attempt: int


def replay_cut(*, seed: str, seq: int, mode: str, price_before: int, floor: int, cut_min: int, cut_max: int,
               helpers_needed: int) -> Draw:  # fmt: skip
    """The cut help ``seq`` makes at ``price_before`` (the rule of docs/forms.md, as
    bargain_help.lua applies it). ``helpers_needed`` 0: none."""
    if mode == "assist":
        return Draw(0, 0, 0, -1, 0)
    rest = price_before - floor
    if helpers_needed and seq == helpers_needed:
        return Draw(rest, rest, rest, -1, 0)
    lo, hi = cut_min, cut_max
    if mode == "red_packet":
        left = helpers_needed - seq + 1
        hi = min(2 * rest // left, rest - (left - 1) * lo)
    elif helpers_needed:
        hi = min(hi, rest - (helpers_needed - seq))
        lo = min(lo, hi)
    value, u, attempt = uniform(seed, seq, lo, hi)
    return Draw(min(value, rest), lo, hi, u, attempt)


# --- views ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutView:
    seq: int
    helper_id: int
    nickname: str | None
    cut: int
    at: datetime


@dataclass(frozen=True)
class BargainView:
    bargain: Bargain
    price: int
    #: A red packet's value now (its initial value plus every increment); the price otherwise.
    value: int
    helpers: int
    finished: bool
    expired: bool
    seconds_left: int
    cuts: list[CutView]


@dataclass(frozen=True)
class HelpResult:
    bargain_id: int
    seq: int
    cut: int
    price: int
    finished: bool


def worth(bargain: Bargain, price: int) -> int:
    """What a bargain is worth at ``price`` (its price, in fen): a red packet keeps its
    value as the reduction of a price starting at ``start_price``, on top of its base."""
    return bargain.base_value + bargain.start_price - price if bargain.mode == "red_packet" else price


def _finished(mode: str, *, price: int, floor: int, helpers: int, needed: int) -> bool:
    if mode == "assist":
        return helpers >= needed
    return price <= floor or (needed > 0 and helpers >= needed)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _rules(snap: CampaignSnapshot) -> dict[str, Any] | None:
    """The columns a new bargain of this campaign starts with (its rules copied, so an
    edit of the campaign changes only bargains started after it), and ``hours``; None
    when the campaign is no bargain, assist or red packet."""
    if snap.type == "red_packet" and snap.red_packet:
        rp = snap.red_packet
        # What is left to expand plays the price; the initial value is kept apart.
        left = int(rp["cap"]) - int(rp["initial_value"])
        return {
            "start_price": left, "floor_price": 0, "price": left, "base_value": int(rp["initial_value"]),
            "cut_min": int(rp["min_increment"]), "cut_max": left, "helpers_needed": int(rp["helpers_needed"]),
            "help_limit": int(rp["help_limit"]), "hours": int(rp["hours"]),
        }  # fmt: skip
    if snap.type not in ("bargain", "assist") or not snap.bargain:
        return None
    spec = snap.bargain
    start = 0 if snap.type == "assist" else int(spec["start_price"])
    return {
        "start_price": start, "floor_price": 0 if snap.type == "assist" else int(spec["floor_price"]), "price": start,
        "base_value": 0, "cut_min": int(spec["cut_min"]), "cut_max": int(spec["cut_max"]),
        "helpers_needed": int(spec.get("helpers_needed") or 0), "help_limit": int(spec["help_limit"]),
        "hours": int(spec["hours"]),
    }  # fmt: skip


# --- the runtime ----------------------------------------------------------------------------


class Bargains:
    """Per-process runtime: the scripts, and each bargain's campaign (never changes)."""

    def __init__(self, redis: AnyRedis, journey: Journey) -> None:
        self.redis = redis
        self.journey = journey
        here = Path(__file__).parent
        self._help = redis.register_script((here / "bargain_help.lua").read_text())
        self._load = redis.register_script((here / "bargain_load.lua").read_text())
        self._load_helps = redis.register_script(_LOAD_HELPS)
        self._campaign_of: dict[int, int] = {}

    # --- loading from the database ----------------------------------------------------------

    async def load(self, bargain: Bargain) -> bool:
        """Put the bargain's state into Redis from the database unless Redis has it.
        Precondition: the campaign's decision stream is drained for this bargain (a help
        Redis decided but the database lacks would be forgotten) — true whenever Redis
        lost the state, since the stream went with it."""
        keys = BargainKeys(bargain.campaign_id, bargain.id)
        cuts = await BargainCut.filter(bargain_id=bargain.id).order_by("seq")
        price = bargain.start_price - sum(c.cut for c in cuts)
        fields = {
            "id": bargain.id, "owner": bargain.customer_id, "mode": bargain.mode, "floor": bargain.floor_price,
            "price": price, "min": bargain.cut_min, "max": bargain.cut_max, "need": bargain.helpers_needed,
            "limit": bargain.help_limit, "exp": _ms(bargain.expires_at), "n": len(cuts), "seed": bargain.seed,
        }  # fmt: skip
        flat: list[Any] = [x for kv in fields.items() for x in kv]
        entries = [f"{c.helper_customer_id}:{c.cut}:{_ms(c.helped_at)}" for c in cuts]
        keep_until = _ms(bargain.expires_at + KEEP_AFTER_EXPIRY)
        loaded = await call_script(
            self._load, [keys.state, keys.helpers, keys.cuts], [keep_until, len(fields), *flat, *entries]
        )
        await self.redis.sadd(STREAMS_REGISTRY, keys.stream)
        return bool(int(loaded))

    async def load_helps(self, snap: CampaignSnapshot) -> bool:
        """Put the campaign's helps-per-helper counts into Redis from the database unless
        Redis has them (same precondition as ``load``)."""
        rows = await (
            BargainCut.filter(campaign_id=snap.id)
            .annotate(n=Count("id"))
            .group_by("helper_customer_id")
            .values_list("helper_customer_id", "n")
        )
        keep_until = _ms(snap.ends_at + KEEP_AFTER_EXPIRY)
        args: list[Any] = [keep_until]
        for helper, n in rows:
            args += [helper, n]
        keys = BargainKeys(snap.id, 0)
        return bool(int(await call_script(self._load_helps, [keys.helps, keys.helps_loaded], args)))

    async def reconcile(self, campaign_id: int) -> int:
        """Rebuild the campaign's bargain state in Redis from the database (after a Redis
        loss, or to check it): drains the decision stream first, then replaces every
        bargain's keys and the helps counts. Returns the number of bargains loaded.
        Precondition: no helps of this campaign are being decided meanwhile."""
        await BargainWorker(self.redis, min_idle_ms=0).drain()
        snap = await self.journey.catalog.get(campaign_id)
        bargains = await Bargain.filter(campaign_id=campaign_id)
        for bargain in bargains:
            keys = BargainKeys(campaign_id, bargain.id)
            await self.redis.delete(keys.state, keys.helpers, keys.cuts)
            await self.load(bargain)
        await self.redis.delete(helps_key(campaign_id), helps_key(campaign_id) + ":loaded")
        if snap is not None:
            await self.load_helps(snap)
        return len(bargains)

    async def _bargain(self, bargain_id: int) -> Bargain:
        bargain = await Bargain.get_or_none(id=bargain_id)
        if bargain is None:
            raise errors.NotFound(f"no bargain {bargain_id}")
        self._campaign_of[bargain_id] = bargain.campaign_id
        return bargain

    async def _campaign_id(self, bargain_id: int) -> int:
        known = self._campaign_of.get(bargain_id)
        if known is None:
            known = (await self._bargain(bargain_id)).campaign_id
        return known

    async def _snapshot(self, campaign_id: int) -> CampaignSnapshot:
        await self.journey.sync_catalog()
        snap = await self.journey.catalog.get(campaign_id)
        if snap is None:
            raise errors.NotFound(f"no campaign {campaign_id}")
        return snap

    # --- start ------------------------------------------------------------------------------

    async def start(self, campaign_id: int, customer_id: int, now: datetime) -> tuple[Bargain, bool]:
        """The customer's bargain in the campaign: started now (True), or the one they
        started before (False; one per customer and campaign). Joining the campaign
        checks it is running and the customer may take part (services.journey.join)."""
        snap = await visible_snapshot(self.journey, campaign_id, now)
        rules = _rules(snap)
        if rules is None:
            raise errors.NotABargain()
        existing = await Bargain.get_or_none(campaign_id=campaign_id, customer_id=customer_id)
        if existing is not None:
            return existing, False
        participation, _ = await join(self.journey, campaign_id, customer_id, now)
        try:
            bargain = await Bargain.create(
                campaign_id=campaign_id,
                customer_id=customer_id,
                participation_id=participation.id,
                mode=snap.type,
                seed=secrets.token_hex(16),
                expires_at=min(now + timedelta(hours=int(rules.pop("hours"))), snap.ends_at),
                **rules,
            )
        except IntegrityError:
            # The same customer started it concurrently: that one won.
            return await Bargain.get(campaign_id=campaign_id, customer_id=customer_id), False
        self._campaign_of[bargain.id] = campaign_id
        await self.load(bargain)
        return bargain, True

    # --- help ---------------------------------------------------------------------------------

    async def help(self, bargain_id: int, helper_id: int, now: datetime) -> HelpResult:
        """One help (see the module docstring). Precondition: the helper passed the risk
        gate (services.forms.risk.screen)."""
        campaign_id = await self._campaign_id(bargain_id)
        snap = await self._snapshot(campaign_id)
        refusal = phase_refusal(snap, now)
        if refusal is not None:
            raise refusal
        keys = BargainKeys(campaign_id, bargain_id)
        for _ in range(3):
            reply = [text(x) for x in await call_script(self._help, keys.all(), [helper_id, _ms(now)])]
            if reply[0] != "not_loaded":
                break
            await self.load(await self._bargain(bargain_id))
            await self.load_helps(snap)
        else:
            raise errors.RedisUnavailable("the bargain could not be loaded; retry")
        match reply[0]:
            case "ok":
                return HelpResult(bargain_id, int(reply[3]), int(reply[1]), int(reply[2]), reply[4] == "1")
            case "own_bargain":
                raise errors.OwnBargain()
            case "already_helped":
                raise errors.AlreadyHelped()
            case "finished":
                raise errors.BargainFinished()
            case "expired":
                raise errors.BargainExpired()
            case "help_limit":
                rules = snap.red_packet or snap.bargain or {}
                raise errors.HelpLimitReached(details={"help_limit": rules.get("help_limit")})
        raise RuntimeError(f"bargain_help.lua answered {reply!r}")

    # --- read ---------------------------------------------------------------------------------

    async def _live(self, bargain: Bargain) -> tuple[dict[str, str], list[str]]:
        keys = BargainKeys(bargain.campaign_id, bargain.id)
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.state)
                pipe.lrange(keys.cuts, 0, -1)
                state, cuts = await pipe.execute()
            if state:
                return {text(k): text(v) for k, v in state.items()}, [text(c) for c in cuts]
            await self.load(bargain)
        raise errors.RedisUnavailable("the bargain could not be loaded; retry")

    async def view(self, bargain_id: int, now: datetime) -> BargainView:
        """The bargain as it is now (Redis: every decided help, persisted or not)."""
        bargain = await self._bargain(bargain_id)
        state, raw_cuts = await self._live(bargain)
        price, helpers = int(state["price"]), int(state["n"])
        parsed = [entry.split(":") for entry in raw_cuts]
        helper_ids = {int(p[0]) for p in parsed}
        names = dict(await Customer.filter(id__in=helper_ids).values_list("id", "nickname")) if helper_ids else {}
        cuts = [
            CutView(i + 1, int(p[0]), names.get(int(p[0])), int(p[1]), datetime.fromtimestamp(int(p[2]) / 1000, UTC))
            for i, p in enumerate(parsed)
        ]
        finished = _finished(
            bargain.mode, price=price, floor=bargain.floor_price, helpers=helpers, needed=bargain.helpers_needed
        )
        left = int((bargain.expires_at - now).total_seconds())
        value = worth(bargain, price)
        return BargainView(bargain, price, value, helpers, finished, left <= 0 and not finished, max(0, left), cuts)

    # --- claim --------------------------------------------------------------------------------

    async def claim(self, bargain_id: int, customer_id: int, now: datetime) -> tuple[BargainView, bool]:
        """Claim the reward of the caller's finished bargain (the module docstring), once:
        only the call whose compare-and-set on ``claimed_at`` wins writes it. Returns the
        bargain and whether this call claimed it (False: claimed before)."""
        bargain = await self._bargain(bargain_id)
        if bargain.customer_id != customer_id:
            raise errors.NotFound(f"no bargain {bargain_id} of yours")
        view = await self.view(bargain_id, now)
        if bargain.claimed_at is not None:
            return view, False
        # A red packet is worth what it reached when its time is up; a bargain or an
        # assist pays only when finished.
        if not (view.finished or (bargain.mode == "red_packet" and view.expired)):
            raise errors.BargainNotFinished(details={"expired": view.expired, "price": view.price})
        snap = await self._snapshot(bargain.campaign_id)
        async with in_transaction():
            won = await Bargain.filter(id=bargain_id, claimed_at=None).update(claimed_at=now)
            grant_ids: list[int] = []
            if won:
                await Participation.filter(id=bargain.participation_id, status="joined").update(
                    status="completed", completed_at=now
                )
                if bargain.mode == "red_packet":
                    if (snap.red_packet or {}).get("claim_as") == "voucher":
                        grant_ids = await _voucher_grant(snap, bargain, view.value)
                    else:
                        # The packet's value into the ledger, once (the ref is unique).
                        await points.add(
                            customer_id, view.value, "red_packet", f"red-packet:{bargain_id}", campaign_id=snap.id
                        )
                elif (snap.bargain or {}).get("reward") == "cut_voucher":
                    # The campaign's points and badge; the voucher instead of its coupons.
                    await grant_in_transaction(snap, bargain.participation_id, customer_id, "completion", ())
                    grant_ids = await _voucher_grant(snap, bargain, bargain.start_price - view.price)
                else:
                    grant_ids = await grant_in_transaction(
                        snap, bargain.participation_id, customer_id, "completion", snap.coupons
                    )
        if grant_ids:
            await self.journey.rewards.issue_pending(grant_ids)
        return await self.view(bargain_id, now), bool(won)

    async def reward_voucher(self, bargain_id: int) -> RewardGrant | None:
        """The voucher grant a claim wrote (``cut_voucher``, or a red packet claimed as a
        voucher), issued or refused (pending only if Redis failed meanwhile); None when the
        claim paid no voucher."""
        grant = await RewardGrant.get_or_none(ref=voucher_ref(bargain_id))
        if grant is not None and grant.status == "pending":
            # A repeated claim racing the winner's issue: issuing is idempotent (the grant's
            # record in Redis replays), so this answer says what the winner's will.
            await self.journey.rewards.issue_pending([grant.id])
            grant = await RewardGrant.get(id=grant.id)
        return grant


def voucher_ref(bargain_id: int) -> str:
    """The ref of a bargain's (or red packet's) voucher grant: unique, so it is owed once."""
    return f"bargain:{bargain_id}"


async def _voucher_grant(snap: CampaignSnapshot, bargain: Bargain, value: int) -> list[int]:
    """Owe the bargain's owner one voucher of the campaign's coupon worth ``value`` fen
    (none when ``value`` is 0: a packet nobody expanded from 0). Returns the pending
    grant's id, for issuing after the commit. Precondition: inside the claim's
    transaction, which won its compare-and-set (the ref is unique besides). A campaign
    without its coupon (the builder requires one) owes nothing, logged."""
    if value <= 0:
        return []
    if not snap.coupons:
        log.error("campaign %d pays a voucher but has no coupon: bargain %d gets none", snap.id, bargain.id)
        return []
    grant = await RewardGrant.create(
        participation_id=bargain.participation_id, ref=voucher_ref(bargain.id), customer_id=bargain.customer_id,
        campaign_id=snap.id, template_id=snap.coupons[0].id, trigger=bargain.mode, face_value=value,
    )  # fmt: skip
    return [grant.id]


# --- persistence ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HelpEntry:
    bargain_id: int
    campaign_id: int
    helper_id: int
    seq: int
    cut: int
    before: int
    after: int
    lo: int
    hi: int
    u: int
    attempt: int
    at: datetime


def _parse(campaign_id: int, fields: dict[Any, Any]) -> HelpEntry:
    f = {text(k): text(v) for k, v in fields.items()}
    return HelpEntry(
        bargain_id=int(f["bid"]), campaign_id=campaign_id, helper_id=int(f["helper"]), seq=int(f["seq"]),
        cut=int(f["cut"]), before=int(f["before"]), after=int(f["after"]), lo=int(f["lo"]), hi=int(f["hi"]),
        u=int(f["u"]), attempt=int(f["k"]), at=datetime.fromtimestamp(int(f["at"]) / 1000, UTC),
    )  # fmt: skip


def _campaign_of_stream(stream: str) -> int:
    return int(stream[len("{cmp:") : stream.index("}")])


async def persist(entries: Iterable[HelpEntry]) -> int:
    """Write the helps not in the database yet and bring their bargains' price, helper
    count and finish time up to date, in one transaction. Idempotent (a help is unique
    per bargain and sequence number). Returns how many were new."""
    batch = list({(e.bargain_id, e.seq): e for e in entries}.values())
    if not batch:
        return 0
    for attempt in range(3):
        try:
            async with in_transaction():
                ids = {e.bargain_id for e in batch}
                # Lock the bargains first (in id order: no deadlock between workers). Two
                # workers persisting different helps of one bargain at once would each count
                # the cuts without the other's uncommitted ones (PostgreSQL's read committed):
                # both totals short, the last save wins, and a finish is never recorded.
                await Bargain.filter(id__in=ids).order_by("id").select_for_update()
                known = set(await BargainCut.filter(bargain_id__in=ids).values_list("bargain_id", "seq"))
                fresh = [e for e in batch if (e.bargain_id, e.seq) not in known]
                if not fresh:
                    return 0
                await BargainCut.bulk_create(
                    [
                        BargainCut(
                            bargain_id=e.bargain_id,
                            campaign_id=e.campaign_id,
                            helper_customer_id=e.helper_id,
                            seq=e.seq,
                            cut=e.cut,
                            price_before=e.before,
                            price_after=e.after,
                            lo=e.lo,
                            hi=e.hi,
                            draw=e.u,
                            retries=e.attempt,
                            helped_at=e.at,
                        )
                        for e in fresh
                    ]
                )
                touched = {e.bargain_id for e in fresh}
                sums = await (
                    BargainCut.filter(bargain_id__in=touched)
                    .annotate(total=Sum("cut"), n=Count("id"))
                    .group_by("bargain_id")
                    .values_list("bargain_id", "total", "n")
                )
                last_at: dict[int, datetime] = {}
                for e in fresh:
                    last_at[e.bargain_id] = max(last_at.get(e.bargain_id, e.at), e.at)
                finished: list[Bargain] = []
                for bargain in await Bargain.filter(id__in=touched):
                    total, n = next((int(t or 0), int(c)) for b, t, c in sums if b == bargain.id)
                    bargain.price = bargain.start_price - total
                    bargain.helpers = n
                    done = _finished(
                        bargain.mode, price=bargain.price, floor=bargain.floor_price, helpers=n,
                        needed=bargain.helpers_needed,
                    )  # fmt: skip
                    if done and bargain.finished_at is None:
                        bargain.finished_at = last_at[bargain.id]
                        finished.append(bargain)
                    await bargain.save(update_fields=["price", "helpers", "finished_at"])
                await _notify_finished(finished)
                return len(fresh)
        except IntegrityError:
            log.warning("bargain helps batch conflicted (attempt %d); retrying", attempt + 1)
    raise RuntimeError("could not persist a bargain helps batch after 3 attempts")


#: The ``result`` of a finished bargain's message, per mode (a notification's text is Chinese,
#: as the group buy's ``group_result``).
FINISHED_TEXT = {"bargain": "砍价成功", "assist": "助力成功", "red_packet": "红包已膨胀满"}


def finished_key(bargain_id: int) -> str:
    """The outbox key of a bargain's "finished" message: one per bargain."""
    return f"bargain:{bargain_id}:finished"


async def _notify_finished(bargains: list[Bargain]) -> None:
    """Queue each owner's ``bargain_result`` message (the reward can be claimed now).
    Precondition: inside the transaction that set these bargains' ``finished_at``."""
    if not bargains:
        return
    campaigns = {
        c["id"]: c
        for c in await Campaign.filter(id__in={b.campaign_id for b in bargains}).values(
            "id", "content", "default_language"
        )
    }
    for b in bargains:
        campaign = campaigns.get(b.campaign_id)
        title = notify_outbox.title_of(campaign["content"], campaign["default_language"]) if campaign else ""
        value = worth(b, b.price)
        await notify_outbox.enqueue(
            finished_key(b.id), "bargain_result", b.customer_id,
            {
                "campaign_id": b.campaign_id, "bargain_id": b.id, "campaign_title": title,
                "result": FINISHED_TEXT.get(b.mode, "已完成"), "value": value,
                "finished_at": (b.finished_at or datetime.now(UTC)).isoformat(),
            },
        )  # fmt: skip


class BargainWorker:
    """Moves decided helps from every campaign's stream into the database (like the
    claims worker, services/stock/claims.py: acknowledged and deleted only after the
    commit; a dead consumer's entries are re-claimed after ``min_idle_ms``)."""

    def __init__(self, redis: AnyRedis, *, batch: int = 500, min_idle_ms: int = 30_000, name: str | None = None):
        self.redis = redis
        self.batch = batch
        self.min_idle_ms = min_idle_ms
        self.name = name or f"bargains-{secrets.token_hex(4)}"
        self._groups: set[str] = set()

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            await self.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def run_once(self, *, recover: bool = True) -> int:
        """One pass over every stream; returns the number of entries handled."""
        handled = 0
        for stream in sorted(text(s) for s in await self.redis.smembers(STREAMS_REGISTRY)):
            await self._ensure_group(stream)
            raw: dict[str, Any] = {}
            if recover:
                _, stale, _ = await self.redis.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, min_idle_time=self.min_idle_ms, start_id="0-0", count=self.batch
                )
                for entry_id, fields in stale:
                    raw[text(entry_id)] = fields
                mine: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: "0"}, count=self.batch)
            else:
                mine = []
            fresh: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: ">"}, count=self.batch)
            replies: list[Any] = [mine or [], fresh or []]
            for reply in replies:
                for _, items in reply:
                    for entry_id, fields in items:
                        raw[text(entry_id)] = fields
            if not raw:
                continue
            campaign_id = _campaign_of_stream(stream)
            entries = [_parse(campaign_id, fields) for fields in raw.values() if fields]
            # Cancelled here, the batch still commits; it just stays unacknowledged.
            await run_to_end(persist(entries))
            ids = list(raw)
            await self.redis.xack(stream, CONSUMER_GROUP, *ids)
            await self.redis.xdel(stream, *ids)
            handled += len(ids)
        return handled

    async def drain(self, max_passes: int = 1000) -> int:
        """Persist until every stream is empty (tests, reconcile, shutdown)."""
        total = 0
        for _ in range(max_passes):
            handled = await self.run_once()
            total += handled
            if handled == 0:
                break
        return total

    async def run_forever(
        self, idle_sleep: float = 0.05, max_idle_sleep: float = 0.4, recover_every: float = 5.0
    ) -> None:
        me = asyncio.current_task()
        pause = idle_sleep
        next_recovery = 0.0
        while me is None or not me.cancelling():
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + recover_every
            try:
                handled = await self.run_once(recover=recover)
            except Exception:  # a failed pass must not kill the worker; entries stay pending
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("bargain helps pass failed")
                handled = 0
            if handled:
                pause = idle_sleep
            else:
                await asyncio.sleep(pause)
                pause = min(max_idle_sleep, pause * 2)
        raise asyncio.CancelledError
