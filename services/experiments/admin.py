"""Creating, starting, stopping and re-weighting experiments (audited)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from models.campaigns import Campaign
from models.experiments import Experiment
from services.campaigns import exclusive_ids
from services.core import audit, errors
from services.experiments.assignment import BUCKETS
from services.experiments.spec import ExperimentIn, WeightsIn

#: How far the exclusivity graph is walked to name a layer (a campaign's component).
_MAX_COMPONENT = 1_000


def _snapshot(e: Experiment) -> dict[str, Any]:
    return {
        "status": e.status, "arms": e.arms, "bucket_version": e.bucket_version, "layer": e.layer,
        "traffic_lo": e.traffic_lo, "traffic_hi": e.traffic_hi,
    }  # fmt: skip


async def get(experiment_id: int) -> Experiment:
    found = await Experiment.get_or_none(id=experiment_id)
    if found is None:
        raise errors.NotFound(f"no experiment {experiment_id}")
    return found


async def create(body: ExperimentIn, actor: audit.Actor) -> Experiment:
    """A draft experiment on an existing campaign (it assigns nobody until started)."""
    if not await Campaign.exists(id=body.campaign_id):
        raise errors.UnknownCampaign(details={"field": "campaign_id"})
    arms: list[dict[str, Any]] = [
        {"key": a.key, "name": a.name, "weight": a.weight, "holdout": False} for a in body.arms
    ]
    if body.holdout is not None:
        arms.append({"key": "holdout", "name": "no contact", "weight": body.holdout.weight, "holdout": True})
    async with in_transaction():
        experiment = await Experiment.create(
            campaign_id=body.campaign_id, name=body.name, salt=secrets.token_hex(8), arms=arms,
            primary_metric=body.primary_metric, guardrails=list(body.guardrails),
            traffic_percent=body.traffic_percent, pre_period_days=body.pre_period_days,
            planned_exposures=body.planned_exposures, created_by=actor.id or 0,
        )  # fmt: skip
        await audit.record(actor, "experiment.create", "experiment", experiment.id, None, _snapshot(experiment))
    return experiment


async def layer_of(campaign_id: int) -> str:
    """The layer of a campaign: its connected component in the exclusivity graph, named
    by the lowest campaign id in it. Experiments on campaigns marked mutually exclusive
    share a layer, so a customer is in at most one of them."""
    seen = {campaign_id}
    todo = [campaign_id]
    while todo and len(seen) < _MAX_COMPONENT:
        for other in await exclusive_ids(todo.pop()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return f"campaigns:{min(seen)}"


def _free_range(taken: list[tuple[int, int]], size: int) -> tuple[int, int] | None:
    """The first gap of ``size`` buckets among the taken [lo, hi) ranges."""
    edge = 0
    for lo, hi in sorted(taken):
        if lo - edge >= size:
            return edge, edge + size
        edge = max(edge, hi)
    return (edge, edge + size) if BUCKETS - edge >= size else None


async def start(experiment_id: int, actor: audit.Actor, now: datetime) -> Experiment:
    """draft → running: its layer is named and a traffic range allocated there, disjoint
    from the other running experiments of the layer (else experiment_layer_full)."""
    async with in_transaction():
        experiment = await Experiment.filter(id=experiment_id).select_for_update().first()
        if experiment is None:
            raise errors.NotFound(f"no experiment {experiment_id}")
        if experiment.status != "draft":
            raise errors.InvalidTransition(
                f"experiment {experiment.id} is {experiment.status}: only a draft starts",
                details={"status": experiment.status},
            )
        before = _snapshot(experiment)
        layer = await layer_of(experiment.campaign_id)
        taken = [
            (lo, hi)
            for lo, hi in await Experiment.filter(layer=layer, status="running").values_list("traffic_lo", "traffic_hi")
            if lo is not None and hi is not None
        ]
        found = _free_range(taken, experiment.traffic_percent * BUCKETS // 100)
        if found is None:
            raise errors.ExperimentLayerFull(details={"layer": layer, "taken": sorted(taken)})
        experiment.layer, (experiment.traffic_lo, experiment.traffic_hi) = layer, found
        experiment.status, experiment.started_at = "running", now
        await experiment.save()
        await audit.record(actor, "experiment.start", "experiment", experiment.id, before, _snapshot(experiment))
    return experiment


async def stop(experiment_id: int, actor: audit.Actor, now: datetime) -> Experiment:
    """running → stopped: nobody is assigned or held out any more, results stay."""
    async with in_transaction():
        experiment = await Experiment.filter(id=experiment_id).select_for_update().first()
        if experiment is None:
            raise errors.NotFound(f"no experiment {experiment_id}")
        if experiment.status != "running":
            raise errors.InvalidTransition(
                f"experiment {experiment.id} is {experiment.status}: only a running one stops",
                details={"status": experiment.status},
            )
        before = _snapshot(experiment)
        experiment.status, experiment.stopped_at = "stopped", now
        await experiment.save()
        await audit.record(actor, "experiment.stop", "experiment", experiment.id, before, _snapshot(experiment))
    return experiment


async def reweight(experiment_id: int, body: WeightsIn, actor: audit.Actor) -> Experiment:
    """New weights (one per arm, the holdout's last). The bucket version grows, so
    customers not yet exposed are assigned afresh, and exposed ones keep their arm."""
    async with in_transaction():
        experiment = await Experiment.filter(id=experiment_id).select_for_update().first()
        if experiment is None:
            raise errors.NotFound(f"no experiment {experiment_id}")
        if experiment.status == "stopped":
            raise errors.InvalidTransition(f"experiment {experiment.id} is stopped", details={"status": "stopped"})
        if len(body.weights) != len(experiment.arms):
            raise errors.ValidationFailed(
                f"weights: {len(experiment.arms)} expected, one per arm (the holdout last)",
                details={"errors": [{"field": "weights", "message": "one per arm", "type": "length"}]},
            )
        before = _snapshot(experiment)
        experiment.arms = [{**arm, "weight": w} for arm, w in zip(experiment.arms, body.weights, strict=True)]
        experiment.bucket_version += 1
        await experiment.save()
        await audit.record(actor, "experiment.reweight", "experiment", experiment.id, before, _snapshot(experiment))
    return experiment
