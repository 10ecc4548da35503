"""An experiment's results: per-arm sums aggregated in one SQL statement, then the
statistics of services.experiments.stats (docs/experiments.md#results).

What counts (window: from the experiment's start to its stop, or now):
- join: the customer joined the campaign; grab: holds a voucher of the campaign issued
  in the window; redemption: redeemed one (not reversed); revenue: the order amounts of
  those redemptions (fen). ``revenue_sql`` is the one place revenue is defined, to be
  swapped for attributed revenue when attribution exists.
- The CUPED covariate of each metric is the same metric over every campaign in the
  ``pre_period_days`` before the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from tortoise import connections
from tortoise.transactions import in_transaction

from models.experiments import Experiment
from services.core import Dialect, Out, Params, dialect_of
from services.experiments import stats
from services.experiments.assignment import bucket_counts

BINARY = {"join": True, "grab": True, "redemption": True, "revenue": False}
ALPHA = 0.05


@dataclass(frozen=True)
class _Window:
    since: datetime
    until: datetime
    pre_since: datetime


def _at(p: Params, moment: datetime) -> str:
    # SQLite keeps timestamps as ISO text whose separator varies by writer: julianday
    # reads both, with the offset, to the millisecond.
    return p(moment) if p.dialect == "postgres" else f"julianday({p(moment.isoformat())})"


def _col(p: Params, column: str) -> str:
    return column if p.dialect == "postgres" else f"julianday({column})"


def _in(p: Params, column: str, since: datetime, until: datetime) -> str:
    return f"{_col(p, column)} >= {_at(p, since)} AND {_col(p, column)} < {_at(p, until)}"


#: The per-customer columns every branch of the event union writes, in order.
_COLUMNS = ("j_now", "j_pre", "g_now", "g_pre", "r_cnt", "r_rev", "r_cost", "r_pre", "r_pre_rev")


def _branch(values: dict[str, str], source: str) -> str:
    """One branch of the union: customer_id and the columns (0 where not given)."""
    return f"SELECT customer_id, {', '.join(values.get(c, '0') + ' AS ' + c for c in _COLUMNS)} FROM {source}"


def revenue_sql(p: Params, campaign_id: int | None, since: datetime, until: datetime, *, pre: bool = False) -> str:
    """The revenue branch: one row per redemption (not reversed) of one campaign (None:
    any) in [since, until), with its order amount as revenue and its face value as the
    coupon's cost. The one place revenue is defined: swap this for attributed revenue."""
    scope = "" if campaign_id is None else f"campaign_id = {p(campaign_id)} AND "
    where = f"redemptions WHERE {scope}reversed_at IS NULL AND {_in(p, 'created_at', since, until)}"
    # Floats: summing bigints gives PostgreSQL numerics, a third slower to fold.
    amount, face = _float(p.dialect, "COALESCE(order_amount, 0)"), _float(p.dialect, "face_value")
    if pre:
        return _branch({"r_pre": "1", "r_pre_rev": amount}, where)
    return _branch({"r_cnt": "1", "r_rev": amount, "r_cost": face}, where)


def _presence(
    p: Params, column: str, table: str, at: str, campaign_id: int | None, since: datetime, until: datetime
) -> str:
    scope = "" if campaign_id is None else f"campaign_id = {p(campaign_id)} AND "
    return _branch({column: "1"}, f"{table} WHERE {scope}{_in(p, at, since, until)}")


def _float(dialect: Dialect, expr: str) -> str:
    return f"CAST({expr} AS {'DOUBLE PRECISION' if dialect == 'postgres' else 'REAL'})"


def _results_sql(p: Params, experiment: Experiment, metrics: list[str], w: _Window) -> str:
    """One row per arm: for each metric sum_y, sum_y2, sum_x, sum_x2, sum_xy, then the
    sums and sums of squares of redemptions and revenue, and the coupon cost (for the
    holdout comparison).

    Sparse: every term of every sum is 0 for a customer who neither converted nor did
    anything in the pre-period, so the statement gathers the customers' events (joins,
    vouchers, redemptions, now and in the pre-period) in one union, folds them per
    customer, and only then meets the exposures (one join); n comes from ``_counts``."""
    c = experiment.campaign_id
    pre = w.pre_since < w.since
    branches = [revenue_sql(p, c, w.since, w.until)]
    if "join" in metrics:
        branches.append(_presence(p, "j_now", "participations", "joined_at", c, w.since, w.until))
        if pre:
            branches.append(_presence(p, "j_pre", "participations", "joined_at", None, w.pre_since, w.since))
    if "grab" in metrics:
        branches.append(_presence(p, "g_now", "vouchers", "issued_at", c, w.since, w.until))
        if pre:
            branches.append(_presence(p, "g_pre", "vouchers", "issued_at", None, w.pre_since, w.since))
    if pre and ("redemption" in metrics or "revenue" in metrics):
        branches.append(revenue_sql(p, None, w.pre_since, w.since, pre=True))
    folded = (
        "SELECT customer_id, MAX(j_now) AS y_join, MAX(j_pre) AS x_join, MAX(g_now) AS y_grab, MAX(g_pre) AS x_grab,"
        " MAX(r_cnt) AS y_redemption, MAX(r_pre) AS x_redemption, SUM(r_rev) AS y_revenue, SUM(r_pre_rev) AS x_revenue,"
        " SUM(r_cnt) AS redeemed_count, SUM(r_rev) AS revenue, SUM(r_cost) AS cost"
        f" FROM ({' UNION ALL '.join(branches)}) events GROUP BY customer_id"
    )
    f = lambda expr: _float(p.dialect, expr)  # noqa: E731  # sums of squares of fen overflow 64-bit integers
    sums: list[str] = []
    for m in metrics:
        y, x = f(f"per.y_{m}"), f(f"per.x_{m}")
        sums += [f"SUM({y})", f"SUM({y} * {y})", f"SUM({x})", f"SUM({x} * {x})", f"SUM({x} * {y})"]
    r, v = f("per.redeemed_count"), f("per.revenue")
    sums += [f"SUM({r})", f"SUM({r} * {r})", f"SUM({v})", f"SUM({v} * {v})", f"SUM({f('per.cost')})"]
    return (
        f"SELECT e.arm, {', '.join(sums)} FROM ({folded}) per JOIN experiment_exposures e"
        f" ON e.experiment_id = {p(experiment.id)} AND e.customer_id = per.customer_id GROUP BY e.arm ORDER BY e.arm"
    )


async def _counts(experiment: Experiment, arms: int) -> tuple[list[int], list[int]]:
    """Exposures per arm: all of them, and those of the current bucket version."""
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    sql = (
        f"SELECT arm, COUNT(*), SUM(CASE WHEN bucket_version = {p(experiment.bucket_version)} THEN 1 ELSE 0 END)"
        f" FROM experiment_exposures WHERE experiment_id = {p(experiment.id)} GROUP BY arm"
    )
    _, rows = await conn.execute_query(sql, p.values)
    found = {int(r[0]): (int(r[1]), int(r[2] or 0)) for r in map(tuple, rows)}
    return [found.get(i, (0, 0))[0] for i in range(arms)], [found.get(i, (0, 0))[1] for i in range(arms)]


# --- the answer ------------------------------------------------------------------------------


class IntervalOut(Out):
    low: float
    high: float


class ArmMetricOut(Out):
    conversions: float = Field(description="customers converting (rates) or the metric's total (revenue, fen)")
    mean: float = Field(description="per exposed customer")
    pre_period_mean: float


class ComparisonOut(Out):
    metric: str
    difference: float = Field(description="treatment mean - control mean, per exposed customer")
    difference_interval: IntervalOut = Field(description="95% Welch z interval (fixed sample: do not peek)")
    relative_lift: float | None = Field(description="difference / control mean (null: control mean 0)")
    relative_lift_interval: IntervalOut | None = Field(description="95%, delta method")
    p_value: float
    chance_to_win: float = Field(description="Bayesian P(treatment > control)")
    cuped_difference: float
    cuped_interval: IntervalOut
    variance_reduction: float = Field(description="1 - CUPED variance / plain variance")
    sequential_interval: IntervalOut = Field(description="always-valid 95% confidence sequence: safe to peek daily")
    sequential_significant: bool = Field(description="the confidence sequence excludes 0")


class IncrementalOut(Out):
    redemptions: float = Field(description="redemptions above the holdout's rate, over this arm's customers")
    revenue: float = Field(description="revenue above the holdout's, over this arm's customers (fen)")
    revenue_interval: IntervalOut
    coupon_cost: int = Field(description="face value of this arm's redemptions (fen)")
    net_revenue: float = Field(description="revenue - coupon_cost (fen)")


class ArmResultOut(Out):
    key: str
    name: str
    holdout: bool
    weight: int
    exposures: int
    expected_share: float
    redemptions: int
    revenue: int = Field(description="order amounts of its redemptions (fen)")
    coupon_cost: int
    metrics: dict[str, ArmMetricOut]
    comparisons: list[ComparisonOut] = Field(description="against the control (empty for the control and holdout)")
    incremental: IncrementalOut | None = Field(description="against the holdout (null without one, or for it)")


class SrmOut(Out):
    chi2: float
    p_value: float
    flagged: bool = Field(description="p < 0.001: the split is not what the weights say, distrust the results")
    exposures: list[int] = Field(description="per arm, of the current bucket version (what the weights promise)")


class ExperimentResultsOut(Out):
    experiment_id: int
    status: str
    primary_metric: str
    guardrails: list[str]
    since: datetime | None
    until: datetime
    pre_period_days: int
    exposures: int
    arms: list[ArmResultOut]
    srm: SrmOut


async def results(experiment: Experiment, now: datetime) -> ExperimentResultsOut:
    """The results so far (before start: every arm empty)."""
    metrics = [experiment.primary_metric, *experiment.guardrails]
    since = experiment.started_at or now
    until = experiment.stopped_at or now
    window = _Window(since, until, since - timedelta(days=experiment.pre_period_days))
    p = Params(dialect_of(connections.get("default")))
    sql = _results_sql(p, experiment, metrics, window)
    async with in_transaction() as conn:
        if p.dialect == "postgres":
            # For this statement only: JIT compiling it costs more than it saves (0.4 s);
            # its per-customer fold is estimated at 200 rows (a union's GROUP BY), not the
            # ~160,000 of a million exposures, so the planner would probe the exposures'
            # index once per customer and spill the fold to disk (bench/RESULTS.md).
            await conn.execute_query("SET LOCAL jit = off")
            await conn.execute_query("SET LOCAL enable_nestloop = off")
            await conn.execute_query("SET LOCAL work_mem = '64MB'")
        _, rows = await conn.execute_query(sql, p.values)
    by_arm: dict[int, tuple[Any, ...]] = {int(r[0]): tuple(r)[1:] for r in map(tuple, rows)}
    arms = experiment.arms
    exposed, current = await _counts(experiment, len(arms))
    counts = bucket_counts([int(a["weight"]) for a in arms])
    shares = [c / sum(counts) for c in counts]
    width = 5 * len(metrics)
    sums: list[dict[str, stats.Sums]] = []
    extra: list[tuple[stats.Sums, stats.Sums, float]] = []
    for i in range(len(arms)):
        row = by_arm.get(i) or (0,) * (width + 5)  # no active customer in the arm: every sum is 0
        n = exposed[i]
        sums.append({
            m: stats.Sums(n, *(float(v or 0) for v in row[5 * k: 5 + 5 * k])) for k, m in enumerate(metrics)
        })  # fmt: skip
        tail = [float(v or 0) for v in row[width : 5 + width]]
        extra.append((stats.Sums(n, tail[0], tail[1]), stats.Sums(n, tail[2], tail[3]), tail[4]))
    treated = [i for i, a in enumerate(arms) if not a.get("holdout")]
    holdout = next((i for i, a in enumerate(arms) if a.get("holdout")), None)
    cuped: dict[str, tuple[float, float]] = {}
    for m in metrics:
        pooled = stats.Sums(0, 0.0, 0.0)
        for i in treated:
            pooled = pooled + sums[i][m]
        cuped[m] = (stats.cuped_theta(pooled), pooled.mean_x)
    control = treated[0]
    out_arms: list[ArmResultOut] = []
    for i, arm in enumerate(arms):
        comparisons: list[ComparisonOut] = []
        if i != control and i != holdout:
            for m in metrics:
                a, b = sums[control][m], sums[i][m]
                if a.n >= 2 and b.n >= 2:
                    theta, mean_x = cuped[m]
                    # n_eff = 1 / (1/n_c + 1/n_t) when the planned exposures arrive.
                    planned = experiment.planned_exposures
                    tune_n_eff = max(1.0, planned * shares[control] * shares[i] / (shares[control] + shares[i]))
                    comparisons.append(_comparison(m, stats.compare(
                        a, b, binary=BINARY[m], theta=theta, mean_x_all=mean_x, alpha=ALPHA, tune_n_eff=tune_n_eff,
                    )))  # fmt: skip
        incremental = None
        if holdout is not None and i != holdout:
            incremental = _incremental(extra[i], extra[holdout])
        n_i = sums[i][metrics[0]].n
        out_arms.append(ArmResultOut(
            key=arm["key"], name=arm.get("name", ""), holdout=bool(arm.get("holdout")), weight=int(arm["weight"]),
            exposures=n_i, expected_share=shares[i], redemptions=round(extra[i][0].sum_y),
            revenue=round(extra[i][1].sum_y), coupon_cost=int(extra[i][2]),
            metrics={
                m: ArmMetricOut(conversions=s.sum_y, mean=s.mean, pre_period_mean=s.mean_x) for m, s in sums[i].items()
            },
            comparisons=comparisons, incremental=incremental,
        ))  # fmt: skip
    check = stats.srm(current, shares)
    return ExperimentResultsOut(
        experiment_id=experiment.id, status=experiment.status, primary_metric=experiment.primary_metric,
        guardrails=list(experiment.guardrails), since=experiment.started_at, until=until,
        pre_period_days=experiment.pre_period_days, exposures=sum(a.exposures for a in out_arms), arms=out_arms,
        srm=SrmOut(chi2=check.chi2, p_value=check.p_value, flagged=check.flagged, exposures=current),
    )  # fmt: skip


def _interval(i: stats.Interval) -> IntervalOut:
    return IntervalOut(low=i.low, high=i.high)


def _comparison(metric: str, c: stats.Comparison) -> ComparisonOut:
    return ComparisonOut(
        metric=metric, difference=c.difference, difference_interval=_interval(c.difference_interval),
        relative_lift=c.relative_lift,
        relative_lift_interval=None if c.relative_lift_interval is None else _interval(c.relative_lift_interval),
        p_value=c.p_value, chance_to_win=c.chance_to_win, cuped_difference=c.cuped_difference,
        cuped_interval=_interval(c.cuped_interval), variance_reduction=c.variance_reduction,
        sequential_interval=_interval(c.sequential_interval), sequential_significant=c.sequential_significant,
    )  # fmt: skip


def _incremental(
    arm: tuple[stats.Sums, stats.Sums, float], held: tuple[stats.Sums, stats.Sums, float]
) -> IncrementalOut | None:
    """Against the no-contact holdout: (arm's mean per customer - holdout's) x the arm's
    customers, for redemptions and revenue; the revenue's 95% interval is n x the Welch
    interval of the difference of means; net revenue subtracts the arm's coupon cost."""
    (count, revenue, cost), (count_h, revenue_h, _) = arm, held
    n = count.n
    if n < 2 or count_h.n < 2:
        return None
    incremental_revenue = (revenue.mean - revenue_h.mean) * n
    half = stats.z_for(ALPHA) * (revenue.var / n + revenue_h.var / revenue_h.n) ** 0.5 * n
    return IncrementalOut(
        redemptions=(count.mean - count_h.mean) * n, revenue=incremental_revenue,
        revenue_interval=IntervalOut(low=incremental_revenue - half, high=incremental_revenue + half),
        coupon_cost=round(cost), net_revenue=incremental_revenue - cost,
    )  # fmt: skip
