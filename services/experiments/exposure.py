"""Exposures: which arm a customer sees, logged once per customer and experiment when
first seen (feed card, campaign page, join, coupon grab, notification), and the holdout's no-contact rule.

The hot path (the feed) pays nothing when no experiment runs on the campaigns shown: the
running experiments are held per process and reloaded at most every ``ttl`` seconds (and
at once after a change made through this process). When one does, one pipelined Redis
round trip (HSETNX + HGET per experiment) both records a first exposure and reads the
sticky arm; only a first exposure writes a database row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from models.experiments import Experiment, ExperimentExposure
from services.core import AnyRedis, errors
from services.experiments.assignment import arm_of, bucket_counts, bucket_of, layer_bucket_of

Surface = Literal["feed", "sections", "page", "join", "grab", "notification"]


def arms_key(experiment_id: int) -> str:
    """Hash: customer id → "arm:bucket_version" of each exposed customer."""
    return f"experiment:{{{experiment_id}}}:arms"


@dataclass(frozen=True)
class Running:
    """A running experiment as assignment needs it."""

    id: int
    campaign_id: int
    salt: str
    bucket_version: int
    counts: tuple[int, ...]
    holdout: int | None  # the holdout arm's index
    layer: str
    traffic: tuple[int, int]

    @classmethod
    def of(cls, e: Experiment) -> Running:
        holdout = next((i for i, a in enumerate(e.arms) if a.get("holdout")), None)
        counts = tuple(bucket_counts([int(a["weight"]) for a in e.arms]))
        traffic = (e.traffic_lo or 0, e.traffic_hi or 0)
        return cls(e.id, e.campaign_id, e.salt, e.bucket_version, counts, holdout, e.layer or "", traffic)

    def fresh_arm(self, customer_id: int) -> int | None:
        """The arm for a customer not exposed yet (None: outside its traffic)."""
        lo, hi = self.traffic
        if not lo <= layer_bucket_of(self.layer, customer_id) < hi:
            return None
        return arm_of(bucket_of(self.salt, self.bucket_version, customer_id), self.counts)


@dataclass(frozen=True)
class Assigned:
    experiment_id: int
    arm: int
    holdout: bool
    first: bool  # this call logged the exposure


class Experiments:
    """The per-process view of running experiments and the exposure log."""

    def __init__(self, redis: AnyRedis, *, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.ttl = ttl
        self._clock = clock
        self._by_campaign: dict[int, tuple[Running, ...]] = {}
        self._loaded_at: float | None = None

    def invalidate(self) -> None:
        """Reload on next use (after a change made through this process)."""
        self._loaded_at = None

    async def running(self) -> dict[int, tuple[Running, ...]]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.ttl:
            by_campaign: dict[int, list[Running]] = {}
            for e in await Experiment.filter(status="running").order_by("id"):
                by_campaign.setdefault(e.campaign_id, []).append(Running.of(e))
            self._by_campaign = {k: tuple(v) for k, v in by_campaign.items()}
            self._loaded_at = now
        return self._by_campaign

    async def expose(
        self, customer_id: int, campaign_ids: Iterable[int], surface: Surface, now: datetime
    ) -> dict[int, Assigned]:
        """The arm of this customer in the running experiment of each campaign that has one
        and takes the customer in (its layer range), logging first exposures. Campaigns
        without such an experiment are absent from the answer."""
        running = await self.running()
        if not running:
            return {}
        chosen: list[tuple[int, Running, int]] = []
        for campaign_id in dict.fromkeys(campaign_ids):
            for experiment in running.get(campaign_id, ()):
                arm = experiment.fresh_arm(customer_id)
                if arm is not None:  # layer ranges are disjoint: at most one takes the customer
                    chosen.append((campaign_id, experiment, arm))
                    break
        if not chosen:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, experiment, arm in chosen:
                pipe.hsetnx(arms_key(experiment.id), str(customer_id), f"{arm}:{experiment.bucket_version}")
                pipe.hget(arms_key(experiment.id), str(customer_id))
            replies = await pipe.execute()
        out: dict[int, Assigned] = {}
        new: list[tuple[int, Running, int]] = []
        for k, (campaign_id, experiment, _) in enumerate(chosen):
            stored = replies[2 * k + 1]
            arm = int((stored.decode() if isinstance(stored, bytes) else str(stored)).split(":")[0])
            if replies[2 * k]:
                new.append((campaign_id, experiment, arm))
            out[campaign_id] = Assigned(experiment.id, arm, arm == experiment.holdout, bool(replies[2 * k]))
        if new:
            await self._record(customer_id, new, surface, now, out)
        return out

    async def _record(
        self, customer_id: int, new: list[tuple[int, Running, int]], surface: Surface, now: datetime,
        out: dict[int, Assigned],
    ) -> None:  # fmt: skip
        """Rows for first exposures. The unique (experiment, customer) row is the truth: if
        Redis lost its hash and a customer looks new again, the row already there wins and
        Redis is corrected."""
        await ExperimentExposure.bulk_create(
            [
                ExperimentExposure(
                    experiment_id=e.id,
                    customer_id=customer_id,
                    arm=arm,
                    bucket_version=e.bucket_version,
                    surface=surface,
                    exposed_at=now,
                )
                for _, e, arm in new
            ],
            ignore_conflicts=True,
        )
        rows = await ExperimentExposure.filter(
            experiment_id__in=[e.id for _, e, _ in new], customer_id=customer_id
        ).values_list("experiment_id", "arm", "bucket_version")
        by_experiment = {row[0]: row for row in rows}
        for campaign_id, e, arm in new:
            row = by_experiment.get(e.id)
            if row is not None and (row[1], row[2]) != (arm, e.bucket_version):
                await self.redis.hset(arms_key(e.id), str(customer_id), f"{row[1]}:{row[2]}")
                out[campaign_id] = Assigned(e.id, row[1], row[1] == e.holdout, False)

    async def peek(self, customer_id: int, campaign_id: int) -> Assigned | None:
        """The customer's arm in the campaign's running experiment without logging an
        exposure (``first`` is False): the recorded arm when exposed, else the arm
        assignment gives. None: no running experiment takes the customer. One Redis
        round trip when an experiment runs on the campaign, none otherwise."""
        for experiment in (await self.running()).get(campaign_id, ()):
            arm = experiment.fresh_arm(customer_id)
            if arm is None:
                continue
            stored = await self.redis.hget(arms_key(experiment.id), str(customer_id))
            if stored is not None:
                arm = int((stored.decode() if isinstance(stored, bytes) else str(stored)).split(":")[0])
            return Assigned(experiment.id, arm, arm == experiment.holdout, False)
        return None

    async def hidden(self, customer_id: int, campaign_ids: Iterable[int], surface: Surface, now: datetime) -> set[int]:
        """The campaigns among these this customer must not see (held out), logging
        exposures of all of them."""
        assigned = await self.expose(customer_id, campaign_ids, surface, now)
        return {campaign_id for campaign_id, a in assigned.items() if a.holdout}

    async def check_contact(self, customer_id: int, campaign_id: int, surface: Surface, now: datetime) -> None:
        """Raise experiment_holdout when the customer is in the campaign's holdout."""
        assigned = (await self.expose(customer_id, (campaign_id,), surface, now)).get(campaign_id)
        if assigned is not None and assigned.holdout:
            details = {"campaign_id": campaign_id, "experiment_id": assigned.experiment_id}
            raise errors.ExperimentHoldout(details=details)
