"""Automation rules set up by admins, and their runs (one per rule and customer).

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

TRIGGERS = (
    "registered", "first_purchase", "campaign_completed", "inactive_for_days", "voucher_expiring", "tier_changed",
)  # fmt: skip
RUN_STATUSES = ("pending", "done", "refused", "failed")


class AutomationRule(Model):
    """When ``trigger`` happens to a customer, do ``action``. Deleting a rule keeps the row
    (``deleted_at``, disabled) so that its runs keep their history."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=100)
    trigger = fields.CharField(max_length=32)
    trigger_params = fields.JSONField[dict[str, Any]](default=dict)
    action = fields.CharField(max_length=32)
    action_params = fields.JSONField[dict[str, Any]](default=dict)
    enabled = fields.BooleanField(default=True)
    created_by = fields.BigIntField()
    updated_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "automation_rules"
        indexes = (Index(fields=("trigger", "enabled"), name="idx_automation_rules_trigger"),)


class AutomationRun(Model):
    """A rule fired for a customer. Unique per (rule, customer): a rule acts on a customer
    at most once, whatever repeats or races. Pending until its action ran (done), was
    refused (sold out, campaign full, rule disabled) or kept failing (failed)."""

    id = fields.BigIntField(primary_key=True)
    # RESTRICT: rules are soft-deleted, runs are history.
    rule: fields.ForeignKeyRelation[AutomationRule] = fields.ForeignKeyField(
        "models.AutomationRule", on_delete=fields.RESTRICT, related_name="runs"
    )
    rule_id: int
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    trigger = fields.CharField(max_length=32)
    # What fired it (the completed campaign, the expiring voucher), for the record.
    context = fields.JSONField[dict[str, Any]](default=dict)
    status = fields.CharField(max_length=16, default="pending")
    outcome = fields.JSONField[dict[str, Any]](default=dict)
    refusal = fields.CharField(max_length=40, null=True)
    attempts = fields.IntField(default=0)
    # The worker takes a pending run from this moment on (a lease, and the retry backoff).
    run_after = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "automation_runs"
        unique_together = (("rule", "customer"),)
        indexes = (
            Index(fields=("status", "run_after"), name="idx_automation_runs_due"),
            Index(fields=("rule_id", "id"), name="idx_automation_runs_rule"),
        )
