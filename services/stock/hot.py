"""Hot coupons: one coupon's stock split over K Redis slots (``stock_buckets`` > 1).

A coupon's keys share its campaign's hash tag, so every grab of it runs on one Redis
master: that master bounds the coupon's grabs per second however many masters the
cluster has. A coupon marked hot keeps its stock in K buckets, bucket 0 in the
campaign's slot (the coupon hash readers already know) and bucket N in slot
``{cmp:ID:bN}`` (services.stock.keys.CampaignKeys with ``bucket``).

Each customer has a home bucket (a hash of the customer id). A grab:

1. in the home bucket (hot_grab.lua): the checks of grab.lua and a reservation of one of
   the customer's per-customer limit in the home bucket's holders hash, the only count
   of this customer's vouchers of the coupon (so the limit is exact, even with
   concurrent grabs taking stock from different buckets). With stock at home and no
   campaign budget, the grab ends here: one round trip, like a normal coupon;
2. if the campaign has a budget, its face value from the budget, in the campaign's slot
   (hot_budget.lua): one counter, so the budget is exact;
3. one unit from the home bucket, then bucket 0, then the others (hot_take.lua), the
   claim appended to that bucket's claims stream in the same step;
4. the idempotency record and the customer's recent claims in the home bucket; or, when
   every bucket was empty, the reservation (and the budget) given back.

Every step takes before it grants: a crash between steps leaves a reservation or budget
taken without a voucher (a customer held back, a unit unsold until reconciliation
rebuilds counters from the database), never a voucher beyond stock, limit or budget.

A sweep (``sweep``) moves the extra buckets' stock into bucket 0: periodically once a
bucket ran dry (the end of the sale is near: the rest is small), and when the campaign
pauses or ends, so the stock left is one figure and nothing is stranded.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.core import AnyRedis, call_script, random_token, request_id_var, text
from services.stock.keys import RECENT_CLAIMS_KEPT, RECENT_CLAIMS_TTL_MS, STREAMS_REGISTRY, CampaignKeys

_LUA = Path(__file__).parent


def home_bucket(customer_id: int, buckets: int) -> int:
    """The bucket holding a customer's count of a hot coupon (stable: crc32 of the id)."""
    return zlib.crc32(str(customer_id).encode()) % buckets if buckets > 1 else 0


def try_order(home: int, buckets: int) -> list[int]:
    """The buckets a grab takes stock from, in order: home, bucket 0 (where sweeps put
    what is left), then the others."""
    rest = [b for b in range(buckets) if b not in (home, 0)]
    return [home] + ([0] if home != 0 else []) + rest


def shares(left: int, buckets: int) -> list[int]:
    """Stock left split over the buckets: equal parts, the remainder to the first ones."""
    return [left // buckets + (1 if b < left % buckets else 0) for b in range(buckets)]


class HotBuckets:
    """The scripts of hot coupons. One per process (held by services.stock.gate.Stock)."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self._grab = redis.register_script((_LUA / "hot_grab.lua").read_text())
        self._take = redis.register_script((_LUA / "hot_take.lua").read_text())
        self._budget = redis.register_script((_LUA / "hot_budget.lua").read_text())
        self._release = redis.register_script((_LUA / "hot_release.lua").read_text())
        self._load = redis.register_script((_LUA / "hot_load.lua").read_text())
        self._sweep = redis.register_script((_LUA / "hot_sweep.lua").read_text())

    async def grab(
        self,
        *,
        campaign_id: int,
        template_id: int,
        buckets: int,
        customer_id: int,
        now_ms: int,
        idempotency_key: str | None,
        idempotency_ttl: int,
        rate_limit: int,
        rate_window_ms: int,
    ) -> list[str]:
        """One grab of a hot coupon (the module docstring's steps). Answers as grab.lua
        does: ``ok, record, left, held``, ``dup, first``, ``not_loaded`` or a refusal
        ``status[, arg]``; ``left`` is the stock left in the bucket it came from."""
        home = home_bucket(customer_id, buckets)
        hk = CampaignKeys(campaign_id, home)
        idem = hk.idempotency(customer_id, template_id, idempotency_key or "-")
        claim_id, code = random_token(20), random_token(16)
        raw = await call_script(
            self._grab,
            keys=[
                hk.coupon(template_id), hk.holders(template_id), hk.stream, idem, hk.rate(customer_id),
                hk.recent(customer_id),
            ],
            args=[
                customer_id, now_ms, claim_id, code, template_id, idempotency_ttl, rate_limit, rate_window_ms,
                "1" if idempotency_key else "0", RECENT_CLAIMS_TTL_MS, RECENT_CLAIMS_KEPT, request_id_var.get(),
            ],
        )  # fmt: skip
        reply = [text(part) for part in raw]
        if reply[0] != "reserved":
            return reply
        face, budgeted, held = reply[1], reply[2] == "1", reply[3]
        budget_taken = False
        if budgeted:
            verdict = text(await call_script(self._budget, keys=[CampaignKeys(campaign_id).budget], args=[face]))
            if verdict == "budget":
                await self._give_back(
                    hk, template_id, customer_id, idem, idempotency_key, "budget", now_ms, idempotency_ttl
                )
                return ["budget"]
            budget_taken = verdict == "taken"
        for bucket in try_order(home, buckets):
            bk = CampaignKeys(campaign_id, bucket)
            took = [
                text(part)
                for part in await call_script(
                    self._take,
                    keys=[bk.coupon(template_id), bk.stream],
                    args=[customer_id, now_ms, claim_id, code, template_id, face, request_id_var.get()],
                )
            ]
            if took[0] == "ok":
                record = f"{claim_id}:{code}:{now_ms}"
                async with self.redis.pipeline(transaction=False) as pipe:
                    if idempotency_key:
                        pipe.set(idem, record, ex=idempotency_ttl)
                    recent = hk.recent(customer_id)
                    pipe.lpush(recent, f"{record}:{template_id}")
                    pipe.ltrim(recent, 0, RECENT_CLAIMS_KEPT - 1)
                    pipe.pexpire(recent, RECENT_CLAIMS_TTL_MS)
                    await pipe.execute()
                return ["ok", record, took[1], held]
        if budget_taken:
            await self.redis.incrby(CampaignKeys(campaign_id).budget, int(face))
        await self._give_back(hk, template_id, customer_id, idem, idempotency_key, "sold_out", now_ms, idempotency_ttl)
        return ["sold_out"]

    async def _give_back(
        self, hk: CampaignKeys, template_id: int, customer_id: int, idem: str, key: str | None, status: str,
        now: int, ttl: int,
    ) -> None:  # fmt: skip
        record = f"refused:{status}::{now}" if key else ""
        await call_script(
            self._release, keys=[hk.holders(template_id), idem, hk.coupon(template_id)],
            args=[customer_id, record, ttl, status],
        )  # fmt: skip

    async def load(
        self,
        *,
        campaign_id: int,
        template_id: int,
        buckets: int,
        left: int,
        config: Sequence[Any],
        budget: str,
        holders: dict[int, int],
    ) -> int:
        """Load a hot coupon's buckets (hot_load.lua), the extra ones first and bucket 0
        last: bucket 0 present means the coupon is loaded. A bucket missing while bucket
        0 is present (lost, or a load interrupted) gets no stock, only its settings (its
        share might have been sold already from elsewhere: reconciliation redistributes).
        ``config`` is limit, opens, closes, face, state, budgeted. Returns 1 if bucket 0
        was new."""
        primary = CampaignKeys(campaign_id)
        loaded_before = bool(await self.redis.exists(primary.coupon(template_id)))
        parts = shares(left, buckets)
        per_bucket: dict[int, list[Any]] = {b: [] for b in range(buckets)}
        for customer_id, count in holders.items():
            per_bucket[home_bucket(customer_id, buckets)] += [customer_id, count]
        new = 0
        for bucket in reversed(range(buckets)):
            bk = CampaignKeys(campaign_id, bucket)
            share = 0 if loaded_before else parts[bucket]
            keys = [bk.coupon(template_id), bk.holders(template_id)] + ([bk.budget] if bucket == 0 else [])
            args = [share, *config, buckets, budget, *per_bucket[bucket]]
            new = int(await call_script(self._load, keys=keys, args=args))
            await self.redis.sadd(STREAMS_REGISTRY, bk.stream)
        return new

    async def sweep(self, campaign_id: int, template_id: int, buckets: int) -> int:
        """Move the extra buckets' stock into bucket 0. Taken out before it is put back:
        a crash in between leaves units unsold (reconciliation restores them), never sold
        twice. Returns how many units moved."""
        primary = CampaignKeys(campaign_id).coupon(template_id)
        if not await self.redis.exists(primary):
            return 0
        moved = 0
        for bucket in range(1, buckets):
            taken = int(await call_script(self._sweep, keys=[CampaignKeys(campaign_id, bucket).coupon(template_id)]))
            if taken:
                await self.redis.hincrby(primary, "stock", taken)
                moved += taken
        return moved

    async def refusals(self, campaign_id: int, template_ids: list[tuple[int, int]]) -> dict[int, dict[str, int]]:
        """Grab refusals by reason per coupon (``(template id, buckets)`` pairs), summed
        over a hot coupon's buckets: the ``r:<status>`` fields the grab scripts count.
        One pipelined round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for template_id, buckets in template_ids:
                for bucket in range(buckets):
                    pipe.hgetall(CampaignKeys(campaign_id, bucket).coupon(template_id))
            raw = iter(await pipe.execute())
        found: dict[int, dict[str, int]] = {}
        for template_id, buckets in template_ids:
            counts: dict[str, int] = {}
            for _ in range(buckets):
                for field, value in (next(raw) or {}).items():
                    name = text(field)
                    if name.startswith("r:"):
                        counts[name[2:]] = counts.get(name[2:], 0) + int(value)
            found[template_id] = counts
        return found

    async def left(self, campaign_id: int, template_id: int, buckets: int) -> list[int | None]:
        """Each bucket's stock (None: not loaded), in one pipelined round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket in range(buckets):
                pipe.hget(CampaignKeys(campaign_id, bucket).coupon(template_id), "stock")
            raw = await pipe.execute()
        return [None if v is None else int(v) for v in raw]


def bucket_keys(campaign_id: int, template_id: int, buckets: int) -> list[str]:
    """Every coupon and holders key of a hot coupon's extra buckets (for a rebuild)."""
    found: list[str] = []
    for bucket in range(1, buckets):
        bk = CampaignKeys(campaign_id, bucket)
        found += [bk.coupon(template_id), bk.holders(template_id)]
    return found
