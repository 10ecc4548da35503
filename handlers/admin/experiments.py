"""Experiments on campaigns for admins: operators create, start, stop and re-weight
them; every admin may read them and their results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from models.experiments import Experiment
from server.access import admin
from server.keys import EXPERIMENTS, STOCK
from server.routing import RouteTable, path_int
from services import experiments
from services.core import Id, Out, Query, errors, newest_first

routes = RouteTable()

WRITERS = admin("operator", "superadmin")
READERS = admin()
_ROOT = "/api/v1/admin/experiments"
_PATH = _ROOT + "/{id}"


class ExperimentArmOut(Out):
    key: str
    name: str
    weight: int
    holdout: bool = Field(description="the no-contact holdout: its customers do not see the campaign")


class ExperimentOut(Out):
    id: int
    campaign_id: int
    name: str
    status: Literal["draft", "running", "stopped"]
    arms: list[ExperimentArmOut] = Field(description="in order: the first is the control, the holdout last")
    primary_metric: str
    guardrails: list[str]
    traffic_percent: int
    layer: str | None = Field(description="campaigns:<id>: the campaign's exclusivity group (named when started)")
    traffic_range: list[int] | None = Field(description="[lo, hi): its layer buckets (of 10,000), once started")
    salt: str = Field(description="with bucket_version, reproduces every assignment (docs/experiments.md)")
    bucket_version: int
    pre_period_days: int
    planned_exposures: int
    started_at: datetime | None
    stopped_at: datetime | None
    created_by: int
    created_at: datetime

    @classmethod
    def of(cls, e: Experiment) -> ExperimentOut:
        data: dict[str, Any] = {k: getattr(e, k) for k in cls.model_fields if k not in ("arms", "traffic_range")}
        traffic = None if e.traffic_lo is None or e.traffic_hi is None else [e.traffic_lo, e.traffic_hi]
        arms = [ExperimentArmOut(**{**a, "holdout": bool(a.get("holdout"))}) for a in e.arms]
        return cls(**data, arms=arms, traffic_range=traffic)


class ExperimentPageOut(Out):
    items: list[ExperimentOut]
    next_cursor: str | None


class ExperimentListQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)
    campaign_id: Id | None = None
    status: Literal["draft", "running", "stopped"] | None = None


@routes.add(
    "POST", _ROOT, access=WRITERS, tags=("experiments",), body=experiments.ExperimentIn, response=ExperimentOut,
    status=201, summary="Create a draft experiment on a campaign: 2-5 arms, an optional no-contact holdout, weights, "
    "a primary metric and guardrails", errors=(errors.UnknownCampaign,),
)  # fmt: skip
async def create_experiment(request: web.Request, body: experiments.ExperimentIn) -> ExperimentOut:
    return ExperimentOut.of(await experiments.admin.create(body, actor_of(request)))


@routes.add(
    "GET", _ROOT, access=READERS, tags=("experiments",), query=ExperimentListQuery, response=ExperimentPageOut,
    summary="Experiments, newest first (by campaign, by status)",
)  # fmt: skip
async def list_experiments(request: web.Request, query: ExperimentListQuery) -> ExperimentPageOut:
    rows = Experiment.all()
    if query.campaign_id is not None:
        rows = rows.filter(campaign_id=query.campaign_id)
    if query.status is not None:
        rows = rows.filter(status=query.status)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return ExperimentPageOut(items=[ExperimentOut.of(e) for e in page], next_cursor=nxt)


@routes.add(
    "GET", _PATH, access=READERS, tags=("experiments",), response=ExperimentOut, summary="One experiment",
    errors=(errors.NotFound,),
)  # fmt: skip
async def get_experiment(request: web.Request) -> ExperimentOut:
    return ExperimentOut.of(await experiments.admin.get(path_int(request, "id")))


@routes.add(
    "POST", _PATH + "/start", access=WRITERS, tags=("experiments",), response=ExperimentOut,
    summary="Start a draft: customers of its traffic range are assigned and exposures logged from now, and its "
    "arms get their shares of the campaign's coupon stock and budget",
    errors=(errors.NotFound, errors.InvalidTransition, errors.ExperimentLayerFull),
)  # fmt: skip
async def start_experiment(request: web.Request) -> ExperimentOut:
    started = await experiments.admin.start(path_int(request, "id"), actor_of(request), datetime.now(UTC))
    request.app[EXPERIMENTS].invalidate()
    # The arms' shares of the stock (services.stock.arms): now if the campaign's coupons
    # are live, else when they are loaded (publication).
    await request.app[STOCK].start_arms(started.campaign_id)
    return ExperimentOut.of(started)


@routes.add(
    "POST", _PATH + "/stop", access=WRITERS, tags=("experiments",), response=ExperimentOut,
    summary="Stop a running experiment: nobody is assigned or held out any more, its arms' stock shares merge "
    "back; its results stay",
    errors=(errors.NotFound, errors.InvalidTransition),
)  # fmt: skip
async def stop_experiment(request: web.Request) -> ExperimentOut:
    stopped = await experiments.admin.stop(path_int(request, "id"), actor_of(request), datetime.now(UTC))
    request.app[EXPERIMENTS].invalidate()
    await request.app[STOCK].arms.merge(stopped.id, stopped.campaign_id)
    return ExperimentOut.of(stopped)


@routes.add(
    "PUT", _PATH + "/weights", access=WRITERS, tags=("experiments",), body=experiments.WeightsIn,
    response=ExperimentOut, summary="Re-weight the arms (the holdout's weight last): the bucket version grows, "
    "customers already exposed keep their arm", errors=(errors.NotFound, errors.InvalidTransition),
)  # fmt: skip
async def reweight_experiment(request: web.Request, body: experiments.WeightsIn) -> ExperimentOut:
    changed = await experiments.admin.reweight(path_int(request, "id"), body, actor_of(request))
    request.app[EXPERIMENTS].invalidate()
    return ExperimentOut.of(changed)


@routes.add(
    "GET", _PATH + "/results", access=READERS, tags=("experiments",), response=experiments.ExperimentResultsOut,
    summary="Per arm exposures, conversions and revenue; lift with a 95% interval, chance to win, CUPED, an "
    "always-valid sequential interval, the sample-ratio check, and the increment over the holdout",
    errors=(errors.NotFound,),
)  # fmt: skip
async def experiment_results(request: web.Request) -> experiments.ExperimentResultsOut:
    experiment = await experiments.admin.get(path_int(request, "id"))
    return await experiments.results(experiment, datetime.now(UTC))
