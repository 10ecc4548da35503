"""Experiments on campaigns (A/B tests with an optional no-contact holdout) and the
exposures of customers to their arms.

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

STATUSES = ("draft", "running", "stopped")
METRICS = ("join", "grab", "redemption", "revenue")


class Experiment(Model):
    """An experiment on one campaign. ``arms`` is the list of arms in order (the first is
    the control), each ``{"key", "name", "weight", "holdout"}``, the holdout (if any) last.
    Customers whose layer bucket lies in [traffic_lo, traffic_hi) take part (the range is
    allocated when it starts, disjoint from the other running experiments of its layer).
    ``bucket_version`` grows with each re-weighting (services/experiments/assignment.py)."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.RESTRICT, related_name="experiments"
    )
    campaign_id: int
    name = fields.CharField(max_length=100)
    status = fields.CharField(max_length=16, default="draft")
    salt = fields.CharField(max_length=32)
    bucket_version = fields.IntField(default=1)
    arms = fields.JSONField[list[dict[str, Any]]]()
    primary_metric = fields.CharField(max_length=16)
    guardrails = fields.JSONField[list[str]](default=list)
    traffic_percent = fields.IntField(default=100)
    layer = fields.CharField(max_length=64, null=True)
    traffic_lo = fields.IntField(null=True)
    traffic_hi = fields.IntField(null=True)
    pre_period_days = fields.IntField(default=28)
    planned_exposures = fields.IntField(default=10_000)
    started_at = fields.DatetimeField(null=True)
    stopped_at = fields.DatetimeField(null=True)
    # The stock and budget quota of each arm, written when the campaign's stock is split
    # (services/stock/arms.py): {"coupons": {template id: {arm: quota}}, "budget": {arm: fen}}.
    stock_split = fields.JSONField[dict[str, Any]](null=True)
    created_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "experiments"
        indexes = (
            Index(fields=("campaign_id",), name="idx_experiments_campaign"),
            Index(fields=("status",), name="idx_experiments_status"),
        )


class ExperimentExposure(Model):
    """A customer's first exposure to an experiment, with the arm they were given
    (its index in the experiment's arms) and the bucket version that chose it. Unique per
    (experiment, customer): the arm is sticky from here on."""

    id = fields.BigIntField(primary_key=True)
    experiment: fields.ForeignKeyRelation[Experiment] = fields.ForeignKeyField(
        "models.Experiment", on_delete=fields.RESTRICT, related_name="exposures"
    )
    experiment_id: int
    customer_id = fields.BigIntField()
    arm = fields.SmallIntField()
    bucket_version = fields.IntField()
    surface = fields.CharField(max_length=16)
    exposed_at = fields.DatetimeField()

    class Meta:
        table = "experiment_exposures"
        unique_together = (("experiment", "customer_id"),)
        indexes = (Index(fields=("experiment_id", "arm"), name="idx_experiment_exposures_arm"),)
