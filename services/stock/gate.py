"""Coupon stock in Redis: loading, the atomic grab, state changes, adding stock and budget.

Redis decides grabs; the database is the source of truth for what was issued (see
services.stock.claims for the stream → database path and services.stock.reconcile for repair).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from tortoise.functions import Count

from models.campaigns import Campaign, CouponTemplate
from models.vouchers import Voucher
from services.core import AnyRedis, call_script, errors, random_token, request_id_var, text
from services.stock.arms import ArmStock, share_field
from services.stock.coupon_cache import CouponInfo
from services.stock.exclusive import ExclusiveMarks
from services.stock.hot import HotBuckets, home_bucket
from services.stock.keys import (
    RECENT_CLAIMS_KEPT,
    RECENT_CLAIMS_TTL_MS,
    STREAMS_REGISTRY,
    CampaignKeys,
    bucket_of_stream,
    campaign_of_stream,
    parse_recent,
)

log = logging.getLogger("wxcampaign.stock")

_LUA = Path(__file__).parent
#: How long a grab's Idempotency-Key answer is kept.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
#: How long a voided voucher's give-back marker is kept (a retry comes within seconds).
GIVE_BACK_MARKER_TTL_SECONDS = 30 * 24 * 3600
#: What give_back.lua answers.
GiveBack = Literal["returned", "dup", "not_loaded"]
#: Redis state of a coupon by campaign status: only "open" coupons can be grabbed.
STATE_OF_STATUS = {"scheduled": "open", "active": "open", "paused": "paused"}
#: Customer ids a targeted campaign's audience load reads per statement (and adds per
#: round trip). 1,000, not 5,000: a page of 5,000 held the event loop 50-100 ms while its
#: SADD was encoded (session 14's loop watch).
AUDIENCE_PAGE = 1000
#: Seconds a half-built audience set outlives a process that died building it.
AUDIENCE_BUILD_TTL = 600
_RENAME_PERSISTENT = "redis.call('RENAME', KEYS[1], KEYS[2]) return redis.call('PERSIST', KEYS[2])"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class GrabPolicy:
    """Per-customer throttle inside the grab script (per campaign, across processes)."""

    max_per_window: int = 10
    window_ms: int = 10_000


@dataclass(frozen=True)
class Claim:
    claim_id: str
    code: str
    grabbed_at: datetime
    replayed: bool


@dataclass(frozen=True)
class CouponMonitor:
    template_id: int
    total_stock: int
    stock_left: int | None
    issued: int | None
    refusals: dict[str, int]


@dataclass(frozen=True)
class CampaignMonitor:
    budget_left: int | None
    coupons: list[CouponMonitor]


class Stock:
    """The Redis side of coupons. One per process, holding its registered scripts."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self._grab = redis.register_script((_LUA / "grab.lua").read_text())
        self._load = redis.register_script((_LUA / "load.lua").read_text())
        self._give_back = redis.register_script((_LUA / "give_back.lua").read_text())
        #: Per-customer exclusivity markers (grabs and joins of exclusive campaigns).
        self.exclusive = ExclusiveMarks(redis)
        #: Coupons whose stock is split over several slots (services.stock.hot).
        self.hot = HotBuckets(redis)
        #: The experiment arms' shares of stock and budget (services.stock.arms).
        self.arms = ArmStock(redis)

    async def load_campaign(self, campaign_id: int) -> int:
        """Put a campaign's coupons into Redis from the database; returns how many were
        new. Coupons already loaded keep their live counters."""
        campaign = await Campaign.get(id=campaign_id)
        keys = CampaignKeys(campaign.id)
        state = STATE_OF_STATUS.get(campaign.status, "closed")
        # budget_spent is kept by the claims worker in the same transaction as the vouchers.
        budget = "" if campaign.budget_limit is None else str(max(0, campaign.budget_limit - campaign.budget_spent))
        templates = await CouponTemplate.filter(campaign_id=campaign.id)
        # Only the grab script reads the audience set: none for a campaign without coupons
        # (one rule query and every member sent to Redis, at publication and activation).
        if templates and campaign.visibility == "targeted" and campaign.audience_rule is not None:
            await self._load_audience(campaign)
        loaded = 0
        for template in templates:
            holders = await holders_of(template.id)
            issued = sum(holders.values())
            opens = template.grab_starts_at or campaign.starts_at
            if template.stock_buckets > 1:
                config = [
                    template.per_user_limit, _ms(opens), _ms(campaign.ends_at), template.face_value, state,
                    "0" if campaign.budget_limit is None else "1",
                ]  # fmt: skip
                loaded += await self.hot.load(
                    campaign_id=campaign.id, template_id=template.id, buckets=template.stock_buckets,
                    left=max(0, template.total_stock - issued), config=config, budget=budget, holders=holders,
                )  # fmt: skip
                continue
            args: list[Any] = [
                max(0, template.total_stock - issued), template.per_user_limit, _ms(opens), _ms(campaign.ends_at),
                template.face_value, state, "1" if campaign.visibility == "targeted" else "0", budget,
            ]  # fmt: skip
            for customer_id, count in holders.items():
                args += [customer_id, count]
            loaded += int(
                await self._load(keys=[keys.coupon(template.id), keys.holders(template.id), keys.budget], args=args)
            )
        if templates:
            # Only a coupon's grab or grant appends claims, and both load the campaign
            # first when it has none loaded: a campaign without coupons has no stream
            # for the claims worker to poll (a pass polls every registered stream).
            await self.redis.sadd(STREAMS_REGISTRY, keys.stream)
            # The arms of a running experiment get (back) their shares of what was loaded.
            await self.arms.apply(campaign.id, list(templates), campaign.budget_limit is not None)
        return loaded

    async def start_arms(self, campaign_id: int) -> None:
        """An experiment started on the campaign: its arms get their shares of the stock
        now when the campaign's coupons are live (loading does it), else when they are
        loaded (publication)."""
        if await Campaign.filter(id=campaign_id, status__in=tuple(STATE_OF_STATUS)).exists():
            await self.load_campaign(campaign_id)

    async def _load_audience(self, campaign: Campaign) -> None:
        """The campaign's grab audience, read ``AUDIENCE_PAGE`` ids at a time into a set
        aside, then put in place with one RENAME (same hash tag): a grab meanwhile reads
        the previous set, never an empty or half-built one, and no step holds the event
        loop for a whole audience (100,000 ids read as one list held it ~110 ms)."""
        # Imported here: targeting is its own domain; only targeted campaigns need it.
        from services.audience import rules as audience

        keys = CampaignKeys(campaign.id)
        building = f"{keys.audience}:building:{random_token(16)}"  # two loads at once: each its own
        after, built = 0, False
        try:
            while True:
                members = await audience.customer_ids_matching(
                    campaign.audience_rule, after_id=after, limit=AUDIENCE_PAGE
                )
                if members:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.sadd(building, *members)
                        pipe.expire(building, AUDIENCE_BUILD_TTL)  # gone if this process dies mid-way
                        await pipe.execute()
                    built = True
                if len(members) < AUDIENCE_PAGE:
                    break
                after = members[-1]
            if built:
                # In one script: a RENAME keeps the building set's expiry, and a process dying
                # between it and the PERSIST would leave the live audience to expire.
                await self.redis.eval(_RENAME_PERSISTENT, 2, building, keys.audience)
            else:
                await self.redis.delete(keys.audience)
        finally:
            await self.redis.delete(building)

    async def set_audience_member(self, campaign_id: int, customer_id: int, member: bool) -> None:
        """One customer joined or left a targeted campaign's grab audience (their tier
        changed). Written whether or not the campaign is loaded: an empty audience is no
        key at all, and loading rebuilds the set from the rule anyway."""
        key = CampaignKeys(campaign_id).audience
        if member:
            await self.redis.sadd(key, customer_id)
        else:
            await self.redis.srem(key, customer_id)

    async def unregister_stream(self, campaign_id: int) -> bool:
        """Stop watching an archived campaign's claims stream once it is drained: the
        claims worker and the wallet's read-your-writes look at every registered stream.
        A stream with claims left stays registered until a later archive transition or
        reconciliation (nothing can be added to it: its coupons are closed)."""
        streams = [
            s for s in map(text, await self.redis.smembers(STREAMS_REGISTRY)) if campaign_of_stream(s) == campaign_id
        ]  # a hot coupon's buckets have their own streams
        removed = False
        for stream in streams or [CampaignKeys(campaign_id).stream]:
            if not await self.redis.xlen(stream):
                removed = bool(await self.redis.srem(STREAMS_REGISTRY, stream)) or removed
        return removed

    async def set_state(self, campaign_id: int, status: str) -> None:
        """Mirror a campaign's status onto its loaded coupons (pause, resume, end)."""
        state = STATE_OF_STATUS.get(status, "closed")
        rows = await CouponTemplate.filter(campaign_id=campaign_id).values_list("id", "stock_buckets")
        for template_id, buckets in rows:
            for bucket in range(int(buckets)):  # a hot coupon's buckets each check the state
                key = CampaignKeys(campaign_id, bucket).coupon(int(template_id))
                if await self.redis.exists(key):
                    await self.redis.hset(key, "state", state)

    async def sweep(self, campaign_id: int) -> int:
        """Move what is left in a campaign's hot coupons' extra buckets into bucket 0
        (services.stock.hot). Returns how many units moved."""
        rows = await CouponTemplate.filter(campaign_id=campaign_id, stock_buckets__gt=1).values_list(
            "id", "stock_buckets"
        )
        return sum([await self.hot.sweep(campaign_id, int(t), int(k)) for t, k in rows])

    async def grab(
        self, info: CouponInfo, customer_id: int, idempotency_key: str | None, policy: GrabPolicy, now: datetime,
        share: str = "",
    ) -> Claim:  # fmt: skip
        """Decide one grab in one round trip, loading the coupon first if it is not in
        Redis yet (on demand). Raises the refusal as an AppError. ``share``: the
        customer's arm share (services.stock.arms.share_field) when an experiment runs
        on the campaign and takes the customer in an arm, else ""."""
        for attempt in range(2):
            reply = await self._run_grab(info, customer_id, idempotency_key, policy, now, share)
            if reply[0] != "not_loaded" or attempt == 1:
                break
            await self.load_campaign(info.campaign_id)
        status = reply[0]
        if status == "dup":
            return replay(reply[1], info)
        if status == "ok":
            claim_id, code, at = reply[1].split(":")
            return Claim(claim_id, code, datetime.fromtimestamp(int(at) / 1000, UTC), replayed=False)
        raise _refusal(status, reply, info, now)

    async def first_answer(self, info: CouponInfo, customer_id: int, idempotency_key: str) -> str | None:
        """The record of an earlier grab of this coupon with this key, if any."""
        key = _idempotency_key(info, customer_id, idempotency_key)
        record = await self.redis.get(key)
        return None if record is None else text(record)

    async def remember_refusal(
        self, info: CouponInfo, customer_id: int, idempotency_key: str, refusal: errors.AppError
    ) -> str | None:
        """Record a refusal decided before the grab script (eligibility from the cache,
        exclusivity) as this key's first answer. Returns the record already there when
        another request with the key answered first (replay that one instead)."""
        key = _idempotency_key(info, customer_id, idempotency_key)
        record = REFUSED_JSON + json.dumps(
            {"code": refusal.code, "message": refusal.message, "details": refusal.details}, separators=(",", ":")
        )
        if await self.redis.set(key, record, nx=True, ex=IDEMPOTENCY_TTL_SECONDS):
            return None
        first = await self.redis.get(key)
        return None if first is None else text(first)

    async def _run_grab(
        self, info: CouponInfo, customer_id: int, idempotency_key: str | None, policy: GrabPolicy, now: datetime,
        share: str,
    ) -> list[str]:  # fmt: skip
        if info.stock_buckets > 1:
            return await self.hot.grab(
                campaign_id=info.campaign_id, template_id=info.template_id, buckets=info.stock_buckets,
                customer_id=customer_id, now_ms=_ms(now), idempotency_key=idempotency_key,
                idempotency_ttl=IDEMPOTENCY_TTL_SECONDS, rate_limit=policy.max_per_window,
                rate_window_ms=policy.window_ms,
            )  # fmt: skip
        keys = CampaignKeys(info.campaign_id)
        # call_script, not AsyncScript.__call__: the same EVALSHA (and reload on NOSCRIPT)
        # without its per-call import and isinstance against a typing.Protocol class.
        raw = await call_script(
            self._grab,
            keys=[
                keys.coupon(info.template_id), keys.holders(info.template_id), keys.budget, keys.stream,
                keys.idempotency(customer_id, info.template_id, idempotency_key or "-"), keys.rate(customer_id),
                keys.audience, keys.recent(customer_id), keys.arm_budget,
            ],
            args=[
                customer_id, _ms(now), random_token(20), random_token(16), info.template_id,
                IDEMPOTENCY_TTL_SECONDS, policy.max_per_window, policy.window_ms, "1" if idempotency_key else "0",
                RECENT_CLAIMS_TTL_MS, RECENT_CLAIMS_KEPT, request_id_var.get(), share,
            ],
        )  # fmt: skip
        return [text(part) for part in raw]

    async def recent_claims(self, customer_id: int, campaign_ids: set[int] | None = None) -> list[dict[str, Any]]:
        """The customer's latest claims (in these campaigns, else in every campaign with
        stock in Redis), newest first: what the wallet shows before the worker has written
        the vouchers. One pipelined round trip."""
        if campaign_ids is None:
            # Every registered stream's slot: a hot coupon's grabs keep the customer's
            # recent claims in the customer's home bucket.
            streams = [text(s) for s in await self.redis.smembers(STREAMS_REGISTRY)]
            slots = sorted({(campaign_of_stream(s), bucket_of_stream(s)) for s in streams})
        else:
            slots = [(campaign_id, 0) for campaign_id in sorted(campaign_ids)]
        if not slots:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for campaign_id, bucket in slots:
                pipe.lrange(CampaignKeys(campaign_id, bucket).recent(customer_id), 0, -1)
            lists = await pipe.execute()
        found = [parse_recent(cid, text(row)) for (cid, _), rows in zip(slots, lists, strict=True) for row in rows]
        found.sort(key=lambda r: r["at"], reverse=True)
        return found

    async def recent_campaigns(self, customer_id: int, among: set[int]) -> set[int]:
        """Which of ``among`` the customer grabbed from lately (claims maybe not yet persisted)."""
        return {int(r["cmp"]) for r in await self.recent_claims(customer_id, among)} if among else set()

    async def give_back(self, voucher: Voucher) -> GiveBack:
        """Return a voided voucher's stock, limit place and budget to its loaded coupon,
        once (give_back.lua): "returned", "dup" (done before) or "not_loaded" (nothing to
        do: loading reads the database). Precondition: the void, with ``stock_returned``,
        is committed, so a later load does not count the voucher either."""
        keys = CampaignKeys(voucher.campaign_id)
        share = (
            "" if voucher.experiment_id is None or voucher.experiment_arm is None
            else share_field(voucher.experiment_id, voucher.experiment_arm)
        )  # fmt: skip
        reply = await call_script(
            self._give_back,
            keys=[
                keys.coupon(voucher.template_id), keys.holders(voucher.template_id), keys.budget,
                keys.returned(voucher.id), keys.arm_budget,
            ],
            args=[voucher.customer_id, voucher.face_value, GIVE_BACK_MARKER_TTL_SECONDS, share],
        )  # fmt: skip
        answer = text(reply)
        if answer not in ("returned", "dup", "not_loaded"):
            raise RuntimeError(f"give_back.lua answered {answer!r}")
        return cast(GiveBack, answer)

    async def add_stock(self, template_id: int, amount: int) -> None:
        """Add to a loaded coupon's stock (the database total is raised by the caller)."""
        template = await CouponTemplate.get(id=template_id)
        key = CampaignKeys(template.campaign_id).coupon(template.id)
        if await self.redis.exists(key):
            await self.redis.hincrby(key, "stock", amount)
            if await self.redis.hexists(key, "split"):
                # Under an experiment: to the customers in no arm (docs/experiments.md).
                await self.redis.hincrby(key, "x:rest", amount)

    async def monitor(self, campaign_id: int) -> CampaignMonitor:
        """The flash-sale monitor of one campaign, from Redis (two pipelined round trips):
        each coupon's stock left (None: not loaded), issued (its database total less what
        is left) and grab refusals by reason as the grab scripts counted them (refusals
        decided before the script, eligibility from the cache or exclusivity, are not
        among them), and the campaign budget left (None: no cap, or not loaded)."""
        rows = (
            await CouponTemplate.filter(campaign_id=campaign_id)
            .order_by("id")
            .values_list("id", "total_stock", "stock_buckets")
        )
        pairs = [(int(t), int(k)) for t, _, k in rows]
        refusals = await self.hot.refusals(campaign_id, pairs)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(CampaignKeys(campaign_id).budget)
            for template_id, buckets in pairs:
                for bucket in range(buckets):
                    pipe.hget(CampaignKeys(campaign_id, bucket).coupon(template_id), "stock")
            raw = iter(await pipe.execute())
        budget = next(raw)
        coupons: list[CouponMonitor] = []
        for (template_id, buckets), (_, total, _) in zip(pairs, rows, strict=True):
            parts = [next(raw) for _ in range(buckets)]
            loaded = [int(p) for p in parts if p is not None]
            left = sum(loaded) if loaded else None
            coupons.append(
                CouponMonitor(
                    template_id=template_id, total_stock=int(total), stock_left=left,
                    issued=None if left is None else int(total) - left, refusals=refusals[template_id],
                )
            )  # fmt: skip
        return CampaignMonitor(budget_left=None if budget is None else int(budget), coupons=coupons)

    async def add_budget(self, campaign_id: int, amount: int) -> None:
        keys = CampaignKeys(campaign_id)
        if await self.redis.exists(keys.budget):
            await self.redis.incrby(keys.budget, amount)
            if await self.redis.exists(keys.arm_budget):
                await self.redis.hincrby(keys.arm_budget, "x:rest", amount)


def _idempotency_key(info: CouponInfo, customer_id: int, idempotency_key: str) -> str:
    """Where a grab's first answer is kept: the campaign's slot, or a hot coupon's
    customer's home bucket (where its grab script records it)."""
    bucket = home_bucket(customer_id, info.stock_buckets)
    return CampaignKeys(info.campaign_id, bucket).idempotency(customer_id, info.template_id, idempotency_key)


#: How a refusal decided before the grab script is recorded (then its JSON).
REFUSED_JSON = "refused:json:"
#: How grab.lua records its refusals ("refused:status:arg:now_ms").
REFUSED = "refused:"


def replay(record: str, info: CouponInfo) -> Claim:
    """The first answer of an Idempotency-Key again: its claim (``replayed``), or its
    refusal raised, as it was answered the first time."""
    if record.startswith(REFUSED_JSON):
        first = json.loads(record.removeprefix(REFUSED_JSON))
        kind = _ERRORS_BY_CODE.get(first["code"], errors.AppError)
        raise kind(first["message"], details=first["details"])
    if record.startswith(REFUSED):
        status, arg, at = record.removeprefix(REFUSED).split(":")
        then = datetime.fromtimestamp(int(at) / 1000, UTC)
        raise _refusal(status, [status, arg], info, then)
    claim_id, code, at = record.split(":")
    return Claim(claim_id, code, datetime.fromtimestamp(int(at) / 1000, UTC), replayed=True)


_ERRORS_BY_CODE: dict[str, type[errors.AppError]] = {kind.code: kind for kind in errors.AppError.__subclasses__()}


def _refusal(status: str, reply: list[str], info: CouponInfo, now: datetime) -> errors.AppError:
    if status == "not_started":
        return errors.GrabNotStarted(
            details={"server_time": now.isoformat(), "opens_at": info.opens_at.isoformat()},
        )
    if status == "limit":
        return errors.CouponLimitReached(details={"limit": info.per_user_limit, "held": int(reply[1])})
    if status == "sold_out":
        return errors.CouponSoldOut()
    if status == "budget":
        return errors.BudgetExhausted()
    if status == "rate_limited":
        return errors.RateLimited(details={"retry_after": max(1, -(-int(reply[1]) // 1000))})
    if status == "not_eligible":
        return errors.NotEligible(details={"reason": "audience"})
    if status == "ended":
        return errors.CampaignNotActive("the grab window has closed", details={"status": "ended"})
    return errors.CampaignNotActive(details={"status": reply[1] if len(reply) > 1 else status})


async def holders_of(template_id: int) -> dict[int, int]:
    """Vouchers per customer of one coupon, from the database (a voided voucher whose
    stock was given back no longer counts)."""
    rows = (
        await Voucher.filter(template_id=template_id, stock_returned=False)
        .annotate(n=Count("id"))
        .group_by("customer_id")
        .values_list("customer_id", "n")
    )
    return {int(customer): int(n) for customer, n in rows}


StockSource = Literal["redis", "database"]


async def stock_left(
    redis: AnyRedis, campaign_id: int, totals: Mapping[int, int]
) -> dict[int, tuple[int, StockSource]]:
    """Stock left of each of a campaign's coupons (id → total stock): ``stocks_left`` of
    one campaign."""
    return (await stocks_left(redis, {campaign_id: totals})).get(campaign_id, {})


async def stocks_left(
    redis: AnyRedis, totals: Mapping[int, Mapping[int, int]]
) -> dict[int, dict[int, tuple[int, StockSource]]]:
    """Stock left of each coupon of these campaigns (campaign id → coupon id → total
    stock), per campaign, and where it was read: Redis's live counter for a loaded coupon
    (one pipelined round trip for all, a second for hot coupons' other buckets), else the
    total minus the vouchers in the database (one query for those)."""
    coupons = [(campaign_id, template_id) for campaign_id, own in totals.items() for template_id in own]
    if not coupons:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id, template_id in coupons:
            pipe.hmget(CampaignKeys(campaign_id).coupon(template_id), "stock", "buckets")
        live = await pipe.execute()
    left: dict[tuple[int, int], tuple[int, StockSource]] = {}
    missing = []
    hot: dict[tuple[int, int], int] = {}
    for coupon, (counter, buckets) in zip(coupons, live, strict=True):
        if counter is None:
            missing.append(coupon)
        else:
            left[coupon] = (max(0, int(counter)), "redis")
            if buckets is not None and int(buckets) > 1:
                hot[coupon] = int(buckets)
    if hot:
        # A hot coupon's stock is bucket 0's (read above) plus its other buckets'
        # (services.stock.hot): a second round trip, for hot coupons only.
        async with redis.pipeline(transaction=False) as pipe:
            for (campaign_id, template_id), buckets in hot.items():
                for bucket in range(1, buckets):
                    pipe.hget(CampaignKeys(campaign_id, bucket).coupon(template_id), "stock")
            extra = iter(await pipe.execute())
        for coupon, buckets in hot.items():
            more = sum(max(0, int(next(extra) or 0)) for _ in range(1, buckets))
            left[coupon] = (left[coupon][0] + more, "redis")
    if missing:
        issued = dict(
            await Voucher.filter(template_id__in=[t for _, t in missing], stock_returned=False)
            .annotate(n=Count("id"))
            .group_by("template_id")
            .values_list("template_id", "n")
        )
        for campaign_id, template_id in missing:
            total = totals[campaign_id][template_id]
            left[campaign_id, template_id] = (max(0, total - int(issued.get(template_id, 0))), "database")
    out: dict[int, dict[int, tuple[int, StockSource]]] = {}
    for (campaign_id, template_id), found in left.items():
        out.setdefault(campaign_id, {})[template_id] = found
    return out
