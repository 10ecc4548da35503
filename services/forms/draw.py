"""Lucky draw (抽奖): a campaign of type ``lucky_draw`` whose customers draw from a prize
table with integer weights (docs/forms.md, Lucky draw).

One Lua step decides a draw (``draw.lua``, with the sampling of ``draw_pick.lua``): the
idempotency replay, the daily limit, the entry (a free draw of the day, else a completed
task not spent yet, else points),
the live weights (a sold-out prize's weight moves to the table's ``sold_out_to`` slot),
the sample, the prize's stock, a coupon prize's claim on the campaign's claims stream
(the grab's own stock, per-customer limit and budget keys: the claims worker writes the
voucher), the day's counters and the draw record on the campaign's draws stream. The
draws worker (``DrawsWorker``) writes each record to ``lucky_draws`` once (unique draw
id) and credits a points prize in the same transaction (ledger ref
``draw-prize:<draw>``).

Randomness: Lua's math.random is not cryptographic, so Python sends the script four
48-bit values from ``secrets``; the script reduces one to a uniform integer below the
live total by rejection sampling (no modulo bias; draw_pick.lua explains why it is
exact), and picks the prize by cumulative weights.

Points: the balance lives in the database ledger (services/journey/points.py), which a
Redis script cannot debit. A paid draw therefore takes a *hold* first: a token (the draw
id) in the campaign's holds set in Redis, then the ledger debit under ref
``draw:<draw>`` (the conditional update: never below zero, ``insufficient_points``
otherwise). The draw script consumes the hold (ZREM) in the same step as the draw, so
the debit belongs to exactly one draw. A hold the script did not consume (refused, a
free draw after all, a crash between the debit and the script) is released by whoever
removes its token first, the request or the worker's sweep of holds older than
``HOLD_STALE_MS``: removing the token is atomic, so the refund (ref
``draw-refund:<draw>``, unique besides) happens at most once, and only when the draw
did not happen. A hold's token is added once per draw id (a marker key guards it), so a
retry under the same Idempotency-Key never re-arms a consumed hold.

Tasks: a campaign naming ``task_campaign_ids`` gives each customer one draw per
participation of those campaigns they completed (services/journey: a challenge's goal, a
bargain claimed, ...), ever. The request counts the completed participations in the
database (a number that only grows: a claw-back aside, which the campaign may then no
longer credit); the script compares it with the tasks already spent, kept per customer in
the campaign's tasks hash, and spends one in the same step as the draw, so concurrent
draws never spend one task twice. The hash is loaded with the prize stock (from the
draws entered with ``task`` in ``lucky_draws``) and rebuilt by ``reconcile``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis import exceptions as redis_errors
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from models.campaigns import Campaign, CouponTemplate
from models.draws import LuckyDraw
from models.journey import PointsEntry
from models.participations import Participation
from services.core import (
    AnyRedis,
    call_script,
    campaign_tag,
    errors,
    newest_first,
    random_token,
    request_id_var,
    run_to_end,
    text,
)
from services.journey import Journey, join_refusal, points, visible_snapshot
from services.notify import outbox as notify_outbox
from services.notify import reward_text_in, titles_of
from services.stock import RECENT_CLAIMS_KEPT, RECENT_CLAIMS_TTL_MS, CampaignKeys

log = logging.getLogger("wxcampaign.draws")

_LUA = Path(__file__).parent
_PICK = (_LUA / "draw_pick.lua").read_text()

#: The set of draws streams the worker reads (one per lucky_draw campaign).
DRAW_STREAMS = "forms:draw:streams"
CONSUMER_GROUP = "persist"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
#: The day's counters outlive the day (a draw at 23:59 in the zone still counts).
DAY_TTL_SECONDS = 2 * 24 * 3600
#: A hold older than this whose draw did not consume it is given back by the sweep: far
#: longer than a request takes between its debit and its script.
HOLD_STALE_MS = 5 * 60 * 1000
#: How long the marker saying "this draw id took its hold" is kept (a retry under the
#: same Idempotency-Key within it never takes a second hold).
HOLD_MARKER_TTL_SECONDS = 2 * IDEMPOTENCY_TTL_SECONDS
#: Random values sent with each draw (each is rejected with probability < 2^-18).
RANDOM_VALUES = 4
TABLE_TTL_SECONDS = 5.0


def hold_ref(draw_id: str) -> str:
    """The ledger ref of a paid draw's debit."""
    return f"draw:{draw_id}"


def refund_ref(draw_id: str) -> str:
    return f"draw-refund:{draw_id}"


def prize_ref(draw_id: str) -> str:
    """The ledger ref of a points prize."""
    return f"draw-prize:{draw_id}"


@dataclass(frozen=True)
class DrawKeys:
    """A lucky draw's Redis keys, in its campaign's slot (the coupons' keys are the
    grab's, services.stock.CampaignKeys)."""

    campaign_id: int

    @property
    def tag(self) -> str:
        return campaign_tag(self.campaign_id)

    @property
    def stock(self) -> str:
        return f"{self.tag}:draw:stock"

    def day(self, customer_id: int, day: str) -> str:
        return f"{self.tag}:draw:day:{customer_id}:{day}"

    def idempotency(self, customer_id: int, key: str) -> str:
        return f"{self.tag}:draw:idem:{customer_id}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    @property
    def holds(self) -> str:
        return f"{self.tag}:draw:holds"

    def held(self, draw_id: str) -> str:
        return f"{self.tag}:draw:held:{draw_id}"

    @property
    def tasks(self) -> str:
        """Per customer: the completed tasks spent on draws."""
        return f"{self.tag}:draw:tasks"

    @property
    def stream(self) -> str:
        return f"{self.tag}:draws"


def campaign_of_stream(stream: str) -> int:
    return int(stream[len("{cmp:") : stream.index("}")])


@dataclass(frozen=True)
class Prize:
    key: str
    kind: str
    weight: int
    stock: int | None
    template_id: int | None
    points: int


@dataclass(frozen=True)
class DrawTable:
    campaign_id: int
    prizes: tuple[Prize, ...]
    #: The index of the prize taking a sold-out prize's weight.
    sold_out_to: int
    free_per_day: int
    points_cost: int
    max_per_day: int
    zone: ZoneInfo
    #: Campaigns whose completed participations each buy a draw (empty: none).
    task_campaign_ids: tuple[int, ...] = ()

    def day_of(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()


async def load_table(campaign_id: int) -> DrawTable | None:
    """The campaign's draw table from the database; None unless it is a lucky draw."""
    campaign = await Campaign.get_or_none(id=campaign_id).only("id", "type", "draw")
    if campaign is None or campaign.type != "lucky_draw" or not campaign.draw:
        return None
    spec = campaign.draw
    coupons = list(await CouponTemplate.filter(campaign_id=campaign_id).order_by("id").values_list("id", flat=True))
    prizes = []
    for p in spec["prizes"]:
        index = p.get("coupon_index")
        prizes.append(
            Prize(
                key=p["key"], kind=p["kind"], weight=int(p["weight"]), stock=p.get("stock"),
                template_id=int(coupons[index]) if index is not None and index < len(coupons) else None,
                points=int(p.get("points") or 0),
            )
        )  # fmt: skip
    keys = [p.key for p in prizes]
    return DrawTable(
        campaign_id=campaign_id, prizes=tuple(prizes), sold_out_to=keys.index(spec["sold_out_to"]),
        free_per_day=int(spec["free_per_day"]), points_cost=int(spec["points_cost"]),
        max_per_day=int(spec["max_per_day"]), zone=ZoneInfo(spec["time_zone"]),
        task_campaign_ids=tuple(int(c) for c in spec.get("task_campaign_ids") or ()),
    )  # fmt: skip


@dataclass(frozen=True)
class DrawOutcome:
    draw_id: str
    prize_key: str
    #: coupon, points or none
    kind: str
    template_id: int | None
    claim_id: str | None
    code: str | None
    points: int
    #: free, task or points
    entry: str
    points_cost: int
    drawn_at: datetime
    replayed: bool


def parse_record(record: str, *, replayed: bool) -> DrawOutcome:
    """A draw as the script records it: ``draw|prize|kind|tpl|claim|code|points|entry|cost|at``."""
    draw, prize, kind, tpl, claim, code, pts, entry, cost, at = record.split("|")
    return DrawOutcome(
        draw_id=draw, prize_key=prize, kind=kind, template_id=int(tpl) or None, claim_id=claim or None,
        code=code or None, points=int(pts), entry=entry, points_cost=int(cost),
        drawn_at=datetime.fromtimestamp(int(at) / 1000, UTC), replayed=replayed,
    )  # fmt: skip


def _refusal(status: str, arg: str, table: DrawTable | None) -> errors.AppError:
    if status == "draw_limit_reached":
        details: dict[str, object] = {"draws_today": int(arg)}
        if table is not None:
            details.update(max_per_day=table.max_per_day, free_per_day=table.free_per_day)
        return errors.DrawLimitReached(details=details)
    if status == "task_required":
        spent, completed = arg.split(":")
        return errors.TaskRequired(
            details={"task_campaign_ids": list(table.task_campaign_ids) if table else [], "completed": int(completed),
                     "used": int(spent)}
        )  # fmt: skip
    if status == "hold_gone":
        return errors.DrawCancelled()
    raise RuntimeError(f"unexpected draw refusal {status!r}")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class LuckyDraws:
    """The Redis side of lucky draws. One per process, holding its registered scripts."""

    def __init__(self, redis: AnyRedis, journey: Journey) -> None:
        self.redis = redis
        self.journey = journey
        self._draw = redis.register_script(_PICK + (_LUA / "draw.lua").read_text())
        self._load = redis.register_script((_LUA / "draw_load.lua").read_text())
        self._batch = redis.register_script(_PICK + (_LUA / "draw_batch.lua").read_text())
        self._tables: dict[int, tuple[float, DrawTable | None]] = {}

    async def table(self, campaign_id: int) -> DrawTable | None:
        """The draw table, cached a few seconds (a running campaign's table only changes
        through review)."""
        cached = self._tables.get(campaign_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        table = await load_table(campaign_id)
        self._tables[campaign_id] = (time.monotonic() + TABLE_TTL_SECONDS, table)
        return table

    # --- drawing ---------------------------------------------------------------------

    async def draw(
        self, *, campaign_id: int, customer_id: int, idempotency_key: str | None, now: datetime
    ) -> DrawOutcome:
        """One draw for this customer (see the module docstring). Raises the refusal as
        an AppError. Precondition: the caller passed the risk gate."""
        keys = DrawKeys(campaign_id)
        if idempotency_key:
            first = await self.redis.get(keys.idempotency(customer_id, idempotency_key))
            if first is not None:
                return self._replay(text(first), None)
        snap = await visible_snapshot(self.journey, campaign_id, now)
        if snap.type != "lucky_draw":
            raise errors.NotALuckyDraw()
        refusal = await join_refusal(self.journey, snap, customer_id, now, check_cap=False)
        if refusal is not None:
            raise refusal
        table = await self.table(campaign_id)
        if table is None:
            raise errors.NotALuckyDraw()
        if idempotency_key:
            seed = f"{campaign_id}:{customer_id}:{idempotency_key}".encode()
            draw_id = "d" + hashlib.sha256(seed).hexdigest()[:32]
        else:
            draw_id = "d" + secrets.token_hex(16)
        held = False
        tasks = await completed_tasks(table, customer_id)
        try:
            for _ in range(6):
                reply = await self._run(keys, table, customer_id, draw_id, idempotency_key, held, now, tasks)
                status = reply[0]
                if status == "ok":
                    outcome = parse_record(reply[1], replayed=False)
                    if held and outcome.entry != "points":
                        await self.release(campaign_id, draw_id)  # it came free (or for a task) after all
                    return outcome
                if status == "dup":
                    if held:
                        await self.release(campaign_id, draw_id)  # the first answer's draw, not ours
                    return self._replay(reply[1], table)
                if status == "not_loaded":
                    await self.load(campaign_id)
                    await self.journey.stock.load_campaign(campaign_id)
                elif status == "needs_points":
                    await self._hold(keys, table, customer_id, draw_id)
                    held = True
                elif status != "resample":
                    raise _refusal(status, reply[1] if len(reply) > 1 else "", table)
            raise RuntimeError("the draw script did not settle")
        except BaseException:
            if held:
                # Not consumed by a draw: given back now (or by the sweep, if this fails too).
                await asyncio.shield(self.release(campaign_id, draw_id))
            raise

    def _replay(self, record: str, table: DrawTable | None) -> DrawOutcome:
        if record.startswith("refused:"):
            _, status, arg = record.split(":", 2)
            raise _refusal(status, arg, table)
        return parse_record(record, replayed=True)

    async def _run(
        self, keys: DrawKeys, table: DrawTable, customer_id: int, draw_id: str, idempotency_key: str | None,
        held: bool, now: datetime, tasks: int,
    ) -> list[str]:  # fmt: skip
        stock_keys = CampaignKeys(table.campaign_id)
        coupon_keys: list[str] = []
        prize_args: list[Any] = [len(table.prizes)]
        for p in table.prizes:
            if p.kind == "coupon" and p.template_id is not None:
                coupon_keys += [stock_keys.coupon(p.template_id), stock_keys.holders(p.template_id)]
            prize_args += [p.key, p.weight, p.kind, p.template_id or 0, p.points, "1" if p.stock is not None else "0"]
        randoms = [secrets.randbits(48) for _ in range(RANDOM_VALUES)]
        raw = await call_script(
            self._draw,
            keys=[
                keys.stock, keys.day(customer_id, table.day_of(now)),
                keys.idempotency(customer_id, idempotency_key or "-"), keys.holds, keys.stream, stock_keys.stream,
                stock_keys.budget, stock_keys.recent(customer_id), keys.tasks, *coupon_keys,
            ],
            args=[
                customer_id, _ms(now), draw_id, table.day_of(now), "1" if idempotency_key else "0",
                IDEMPOTENCY_TTL_SECONDS, table.free_per_day, table.max_per_day, table.points_cost,
                "1" if held else "0", DAY_TTL_SECONDS, random_token(20), random_token(16), RECENT_CLAIMS_TTL_MS,
                RECENT_CLAIMS_KEPT, table.sold_out_to + 1, request_id_var.get(), len(randoms), *randoms, *prize_args,
                tasks,
            ],
        )  # fmt: skip
        return [text(part) for part in raw]

    # --- points holds ----------------------------------------------------------------

    async def _hold(self, keys: DrawKeys, table: DrawTable, customer_id: int, draw_id: str) -> None:
        """Debit the draw's cost under the draw id and hold it for the script. Raises
        InsufficientPoints (nothing held, nothing debited)."""
        if await self.redis.set(keys.held(draw_id), "1", nx=True, ex=HOLD_MARKER_TTL_SECONDS):
            # Before the debit: a crash after it leaves a token for the sweep to refund.
            await self.redis.zadd(keys.holds, {draw_id: int(time.time() * 1000)})
        try:
            await points.add(
                customer_id, -table.points_cost, "lucky_draw", hold_ref(draw_id), campaign_id=table.campaign_id
            )
        except points.InsufficientPoints:
            await self.redis.zrem(keys.holds, draw_id)  # nothing was debited under this ref, ever
            balance = await points.balance_of(customer_id)
            raise errors.InsufficientPoints(
                f"a draw costs {table.points_cost} points; you have {balance}",
                details={"balance": balance, "price": table.points_cost},
            ) from None

    async def release(self, campaign_id: int, draw_id: str) -> bool:
        """Give back a hold no draw consumed: whoever removes its token refunds, once.
        Returns whether points were given back."""
        if not await self.redis.zrem(DrawKeys(campaign_id).holds, draw_id):
            return False
        debit = await PointsEntry.get_or_none(ref=hold_ref(draw_id))
        if debit is None or debit.delta >= 0:
            return False  # the request died before its debit
        entry = await points.add(debit.customer_id, -debit.delta, "lucky_draw_refund", refund_ref(draw_id),
                                 campaign_id=campaign_id)  # fmt: skip
        return entry is not None

    async def release_stale_holds(self, campaign_id: int, now_ms: int | None = None) -> int:
        """Release the holds older than HOLD_STALE_MS (their request died between its
        debit and its draw). Returns how many were refunded."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        stale = await self.redis.zrangebyscore(DrawKeys(campaign_id).holds, "-inf", now_ms - HOLD_STALE_MS)
        return sum([await self.release(campaign_id, text(d)) for d in stale])

    # --- loading and reconciling ---------------------------------------------------

    async def load(self, campaign_id: int, *, force: bool = False) -> bool:
        """Put the prize stock into Redis from the database (stock minus prizes won).
        Without ``force`` only when not loaded yet. Registers the draws stream."""
        table = await self.table(campaign_id)
        if table is None:
            return False
        won = dict(
            await LuckyDraw.filter(campaign_id=campaign_id)
            .annotate(n=Count("id"))
            .group_by("prize_key")
            .values_list("prize_key", "n")
        )
        limited = [p for p in table.prizes if p.stock is not None]
        args: list[Any] = ["1" if force else "0", len(limited)]
        for p in limited:
            args += [p.key, max(0, int(p.stock or 0) - int(won.get(p.key, 0)))]
        spent = (
            await LuckyDraw.filter(campaign_id=campaign_id, entry="task")
            .annotate(n=Count("id"))
            .group_by("customer_id")
            .values_list("customer_id", "n")
        )
        for customer_id, n in spent:
            args += [customer_id, n]
        keys = DrawKeys(campaign_id)
        wrote = bool(await call_script(self._load, keys=[keys.stock, keys.tasks], args=args))
        await self.redis.sadd(DRAW_STREAMS, DrawKeys(campaign_id).stream)
        return wrote

    async def reconcile(self, campaign_id: int, now: datetime | None = None) -> None:
        """Rebuild the draw's Redis state from the database: the prize stock, the tasks
        spent and today's counters of every customer who drew today. Precondition: the draws stream is
        drained (``DrawsWorker.drain``) and no draw is running (as for the stock's
        reconcile): a draw decided but not written yet would be counted as not made."""
        table = await self.table(campaign_id)
        if table is None:
            return
        await self.load(campaign_id, force=True)
        day = table.day_of(now or datetime.now(UTC))
        rows = await LuckyDraw.filter(campaign_id=campaign_id, day=day).values_list("customer_id", "entry")
        counts: dict[int, dict[str, int]] = {}
        for customer_id, entry in rows:
            c = counts.setdefault(int(customer_id), {"n": 0, "free": 0})
            c["n"] += 1
            c["free"] += 1 if entry == "free" else 0
        keys = DrawKeys(campaign_id)
        for customer_id, c in counts.items():
            await self.redis.hset(keys.day(customer_id, day), mapping=c)  # type: ignore[arg-type]
            await self.redis.expire(keys.day(customer_id, day), DAY_TTL_SECONDS)

    # --- reading ---------------------------------------------------------------------

    async def sample_batch(self, weights: list[int], randoms: list[int]) -> tuple[list[int], int]:
        """Run the draw's own sampling (draw_pick.lua) over ``randoms`` (each below 2^48),
        one value per draw: the count per weight, and how many values were rejected. For
        the fairness test and the bench."""
        return await sample_batch(self.redis, weights, randoms, script=self._batch)


async def completed_tasks(table: DrawTable, customer_id: int) -> int:
    """How many draws the customer's completed tasks buy in this campaign, spent or not
    (-1: the campaign takes no task as an entry)."""
    if not table.task_campaign_ids:
        return -1
    return await Participation.filter(
        campaign_id__in=table.task_campaign_ids, customer_id=customer_id, status="completed"
    ).count()


async def sample_batch(
    redis: AnyRedis, weights: list[int], randoms: list[int], *, script: Any = None
) -> tuple[list[int], int]:
    """``LuckyDraws.sample_batch`` without the app (the fairness test needs a Redis only)."""
    if script is None:
        script = redis.register_script(_PICK + (_LUA / "draw_batch.lua").read_text())
    reply = await call_script(script, keys=[], args=[len(weights), *weights, *randoms])
    counts = [int(c) for c in reply]
    return counts[:-1], counts[-1]


async def my_draws(
    customer_id: int, campaign_id: int | None, cursor: str | None, limit: int
) -> tuple[list[LuckyDraw], str | None]:
    """The customer's recorded draws, newest first."""
    query = LuckyDraw.filter(customer_id=customer_id)
    if campaign_id is not None:
        query = query.filter(campaign_id=campaign_id)
    return await newest_first(query, cursor, limit)


# --- the draws worker --------------------------------------------------------------


@dataclass(frozen=True)
class DrawEntry:
    entry_id: str
    draw_id: str
    campaign_id: int
    customer_id: int
    prize_key: str
    kind: str
    template_id: int | None
    claim_id: str | None
    points: int
    entry: str
    cost: int
    day: str
    drawn_at: datetime


def _parse(stream: str, entry_id: Any, fields: dict[Any, Any]) -> DrawEntry:
    f = {text(k): text(v) for k, v in fields.items()}
    return DrawEntry(
        entry_id=text(entry_id), draw_id=f["draw"], campaign_id=campaign_of_stream(stream), customer_id=int(f["uid"]),
        prize_key=f["prize"], kind=f["kind"], template_id=int(f["tpl"]) or None, claim_id=f["claim"] or None,
        points=int(f["pts"]), entry=f["entry"], cost=int(f["cost"]), day=f["day"],
        drawn_at=datetime.fromtimestamp(int(f["at"]) / 1000, UTC),
    )  # fmt: skip


async def persist(entries: list[DrawEntry]) -> int:
    """Write the draws not in the database yet and credit their points prizes, in one
    transaction; returns how many were new. Idempotent (the draw id is unique, and so is
    each ledger ref)."""
    for _ in range(3):
        try:
            async with in_transaction():
                unique = {e.draw_id: e for e in entries}
                known = set(await LuckyDraw.filter(draw_id__in=list(unique)).values_list("draw_id", flat=True))
                fresh = [e for e in unique.values() if e.draw_id not in known]
                if not fresh:
                    return 0
                await LuckyDraw.bulk_create(
                    [
                        LuckyDraw(
                            draw_id=e.draw_id, campaign_id=e.campaign_id, customer_id=e.customer_id,
                            prize_key=e.prize_key, prize_kind=e.kind, template_id=e.template_id, claim_id=e.claim_id,
                            prize_points=e.points, entry=e.entry, points_cost=e.cost, day=e.day, drawn_at=e.drawn_at,
                        )
                        for e in fresh
                    ]
                )  # fmt: skip
                for e in fresh:
                    if e.kind == "points" and e.points > 0:
                        await points.add(e.customer_id, e.points, "lucky_draw_prize", prize_ref(e.draw_id),
                                         campaign_id=e.campaign_id)  # fmt: skip
                await _notify_winners(fresh)
                return len(fresh)
        except IntegrityError:
            log.warning("draws batch conflicted (another consumer wrote some); retrying")
    raise RuntimeError("could not persist a draws batch after 3 attempts")


async def _notify_winners(fresh: list[DrawEntry]) -> None:
    """A "reward earned" subscribe message per prize won (key ``draw:<draw>``: once),
    in the transaction that records the draw. Precondition: inside it."""
    winners = [e for e in fresh if e.kind != "none"]
    if not winners:
        return
    campaigns = {
        c.id: c
        for c in await Campaign.filter(id__in={e.campaign_id for e in winners}).only(
            "id", "content", "default_language"
        )
    }
    for e in winners:
        c = campaigns[e.campaign_id]
        coupons = 1 if e.kind == "coupon" else 0
        await notify_outbox.enqueue(
            f"draw:{e.draw_id}", "reward", e.customer_id,
            {
                "campaign_id": e.campaign_id, "campaign_title": notify_outbox.title_of(c.content, c.default_language),
                "reward": notify_outbox.reward_text(e.points, None, coupons), "points": e.points,
                "earned_at": e.drawn_at.isoformat(), "campaign_titles": titles_of(c.content),
                "default_language": c.default_language,
                "reward_texts": {lang: reward_text_in(lang, e.points, None, coupons) for lang in c.content},
            },
        )  # fmt: skip


class DrawsWorker:
    """Moves draws from every registered draws stream into the database (at least once
    from Redis, exactly once in the database), and releases stale points holds."""

    def __init__(
        self, draws: LuckyDraws, *, batch: int = 500, min_idle_ms: int = 30_000, sweep_every: float = 30.0,
        name: str | None = None,
    ) -> None:  # fmt: skip
        self.draws = draws
        self.redis = draws.redis
        self.batch = batch
        self.min_idle_ms = min_idle_ms
        self.sweep_every = sweep_every
        self.name = name or f"draws-{secrets.token_hex(4)}"
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
        """One pass over every stream (re-claiming a dead consumer's entries with
        ``recover``); returns the number of entries handled."""
        streams = sorted(text(s) for s in await self.redis.smembers(DRAW_STREAMS))
        handled = 0
        for stream in streams:
            await self._ensure_group(stream)
            raw: dict[str, Any] = {}
            if recover:
                claimed: Any = await self.redis.xautoclaim(
                    stream, CONSUMER_GROUP, self.name, min_idle_time=self.min_idle_ms, start_id="0-0", count=self.batch
                )
                for entry_id, fields in claimed[1]:
                    raw[text(entry_id)] = fields
                mine: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: "0"}, count=self.batch)
                for _, items in mine or []:
                    for entry_id, fields in items:
                        raw[text(entry_id)] = fields
            new: Any = await self.redis.xreadgroup(CONSUMER_GROUP, self.name, {stream: ">"}, count=self.batch)
            for _, items in new or []:
                for entry_id, fields in items:
                    raw[text(entry_id)] = fields
            if not raw:
                continue
            entries = [_parse(stream, entry_id, fields) for entry_id, fields in raw.items() if fields]
            # Cancelled here, the batch still commits; it just stays unacknowledged.
            await run_to_end(persist(entries))
            ids = list(raw)
            await self.redis.xack(stream, CONSUMER_GROUP, *ids)
            await self.redis.xdel(stream, *ids)
            handled += len(ids)
        return handled

    async def drain(self, max_passes: int = 1000) -> int:
        total = 0
        for _ in range(max_passes):
            handled = await self.run_once()
            total += handled
            if handled == 0:
                break
        return total

    async def sweep_holds(self) -> int:
        streams = sorted(text(s) for s in await self.redis.smembers(DRAW_STREAMS))
        return sum([await self.draws.release_stale_holds(campaign_of_stream(s)) for s in streams])

    async def run_forever(self, idle_sleep: float = 0.05, max_idle_sleep: float = 0.4) -> None:
        me = asyncio.current_task()
        pause = idle_sleep
        next_sweep = time.monotonic() + self.sweep_every
        next_recovery = 0.0
        while me is None or not me.cancelling():
            recover = time.monotonic() >= next_recovery
            if recover:
                next_recovery = time.monotonic() + 5.0
            try:
                handled = await self.run_once(recover=recover)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_every
                    await self.sweep_holds()
            except Exception:  # a failed pass must not kill the worker; entries stay pending
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("draws pass failed")
                handled = 0
            if handled:
                pause = idle_sleep
            else:
                await asyncio.sleep(pause)
                pause = min(max_idle_sleep, pause * 2)
        raise asyncio.CancelledError
