"""Stock and budget split per experiment arm (docs/experiments.md, Stock per arm).

When an experiment runs on a campaign, each of its arms (not the holdout: it never
grabs) gets a share of every coupon's stock left, and of the campaign budget left when
the campaign has one, in proportion to the arms' weights. The shares live next to the
counters they split, in the campaign's slot: fields ``x<experiment>:<arm>`` of the
coupon hash (and of the hash ``{cmp:ID}:budget:arms`` for the budget), plus ``x:rest``
for customers in no arm (outside the experiment's traffic). The grab script takes one
unit from the customer's share and from the coupon's stock in one step, so one arm
cannot drain another's stock: a share at 0 answers ``coupon_sold_out``.

The experiment's part of a counter is ``traffic_percent / (100 - the traffic of the
experiments split before it on the campaign)`` of what no experiment holds yet; the
rest stays with ``x:rest``. The quotas given at the split are kept on the experiment
(``stock_split``), and each voucher grabbed from an arm's share records the experiment
and arm, so reconciliation rebuilds every share as its quota less the vouchers issued
from it. Stopping the experiment merges its shares back.

Hot coupons (``stock_buckets`` > 1) are not split: their stock spans several slots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tortoise.functions import Count, Sum

from models.campaigns import CouponTemplate
from models.experiments import Experiment
from models.vouchers import Voucher
from services.core import AnyRedis, call_script, text
from services.stock.keys import CampaignKeys

_LUA = Path(__file__).parent


def share_field(experiment_id: int, arm: int) -> str:
    """The field of an arm's share (in the coupon hash and the arms' budget hash)."""
    return f"x{experiment_id}:{arm}"


def _arm_weights(experiment: Experiment) -> list[tuple[int, int]]:
    """(arm index, weight) of the arms that grab: every arm but the holdout."""
    return [(i, int(a["weight"])) for i, a in enumerate(experiment.arms) if not a.get("holdout")]


class ArmStock:
    """The arms' shares of a campaign's counters (one per process, held by Stock)."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self._script = redis.register_script((_LUA / "arms.lua").read_text())

    async def _run(self, op: str, counter: str, shares: str, kind: str, experiment_id: int, *args: Any) -> Any:
        return await call_script(self._script, keys=[counter, shares], args=[op, kind, experiment_id, *args])

    async def apply(self, campaign_id: int, templates: list[CouponTemplate], capped: bool) -> None:
        """Give the arms of the campaign's running experiments their shares of the
        campaign's loaded coupons (and budget when ``capped``): split what is left the
        first time, else restore each share as its quota less the vouchers issued from it
        (after a reload or a reconciliation). Shares already in Redis stay as they are.
        Precondition: the coupons were just loaded (services.stock.gate.Stock.load_campaign)."""
        running = await Experiment.filter(campaign_id=campaign_id, status="running").order_by("id")
        if not running:
            return
        keys = CampaignKeys(campaign_id)
        normal = [t for t in templates if t.stock_buckets <= 1]
        before = 0  # the traffic of the experiments split before this one
        for experiment in running:
            den = max(1, 100 - before)
            before += experiment.traffic_percent
            weights = [x for pair in _arm_weights(experiment) for x in pair]
            if not weights:
                continue
            split: dict[str, Any] = dict(experiment.stock_split or {})
            coupons: dict[str, dict[str, int]] = dict(split.get("coupons") or {})
            issued = await _issued(experiment.id)
            changed = False
            for t in normal:
                quota = coupons.get(str(t.id))
                if quota is None:
                    got = await self._run(
                        "split", keys.coupon(t.id), keys.coupon(t.id), "hash", experiment.id,
                        experiment.traffic_percent, den, *weights,
                    )  # fmt: skip
                    if got:
                        coupons[str(t.id)] = _pairs(got)
                        changed = True
                else:
                    left = [
                        x for arm, q in quota.items()
                        for x in (arm, int(q) - issued["units"].get((t.id, int(arm)), 0))
                    ]  # fmt: skip
                    await self._run("restore", keys.coupon(t.id), keys.coupon(t.id), "hash", experiment.id, *left)
            if capped:
                quota = split.get("budget")
                if quota is None:
                    got = await self._run(
                        "split", keys.budget, keys.arm_budget, "string", experiment.id,
                        experiment.traffic_percent, den, *weights,
                    )  # fmt: skip
                    if got:
                        split["budget"] = _pairs(got)
                        changed = True
                else:
                    left = [x for arm, q in quota.items() for x in (arm, int(q) - issued["fen"].get(int(arm), 0))]
                    await self._run("restore", keys.budget, keys.arm_budget, "string", experiment.id, *left)
            if changed:
                split["coupons"] = coupons
                await Experiment.filter(id=experiment.id).update(stock_split=split)

    async def merge(self, experiment_id: int, campaign_id: int) -> int:
        """Give a stopped experiment's shares back (to the rest, or to the counters alone
        when it was the last experiment splitting them). Returns the units of stock moved."""
        keys = CampaignKeys(campaign_id)
        moved = 0
        ids = await CouponTemplate.filter(campaign_id=campaign_id, stock_buckets__lte=1).values_list("id", flat=True)
        for template_id in ids:
            key = keys.coupon(int(template_id))  # type: ignore[call-overload]
            moved += int(await self._run("merge", key, key, "hash", experiment_id))
        await self._run("merge", keys.budget, keys.arm_budget, "string", experiment_id)
        return moved

    async def shares(self, campaign_id: int, template_id: int) -> dict[str, int]:
        """A coupon's shares as Redis holds them: ``x<experiment>:<arm>`` and ``x:rest``
        → units left ({} when no experiment splits it)."""
        raw = await self.redis.hgetall(CampaignKeys(campaign_id).coupon(template_id))
        fields = {text(k): text(v) for k, v in raw.items()}
        return {k: int(v) for k, v in fields.items() if _SHARE.match(k)}


#: A share's field: an arm's (x<experiment>:<arm>) or the rest's.
_SHARE = re.compile(r"^x(\d+:\d+|:rest)$")


def _pairs(reply: list[Any]) -> dict[str, int]:
    """arm / share pairs as the split answers them."""
    flat = [text(x) for x in reply]
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


async def _issued(experiment_id: int) -> dict[str, dict[Any, int]]:
    """The vouchers issued from an experiment's shares, from the database: units per
    (coupon, arm) and fen per arm (a voided voucher whose stock came back does not count)."""
    rows = await (
        Voucher.filter(experiment_id=experiment_id, stock_returned=False)
        .annotate(n=Count("id"), fen=Sum("face_value"))
        .group_by("template_id", "experiment_arm")
        .values_list("template_id", "experiment_arm", "n", "fen")
    )
    units: dict[Any, int] = {}
    fen: dict[Any, int] = {}
    for template_id, arm, n, value in rows:
        units[(int(template_id), int(arm))] = int(n)
        fen[int(arm)] = fen.get(int(arm), 0) + int(value or 0)
    return {"units": units, "fen": fen}
