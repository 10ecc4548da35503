"""Audience targeting: per-customer derived facts and saved segments.

CustomerDailyActivity is the source of truth (one row per customer and day, written by
the event pipeline through services.audience.facts.record_activity). CustomerFacts holds
what targeting reads: spend and visits over fixed windows of 7, 30, 90, 180 and 365 days,
totals, dates of first and last purchase, and the lifecycle stage. Fixed windows make
every "spent at least X in N days" predicate a comparison on one indexed column instead
of a scan of history at request time. They slide with time, so a nightly
recompute_facts rebuilds them from the daily rows.

Lifecycle stages (days are calendar days in UTC, counted back from today)
- new: registered at most 7 days ago (whatever they bought)
- unactivated: registered more than 7 days ago and never purchased
- active: last purchase at most 30 days ago
- silent: last purchase 31 to 90 days ago
- churned: last purchase more than 90 days ago

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

#: The windows (days) facts are kept for. Adding one means a column, a migration and a
#: backfill by recompute_facts.
WINDOWS = (7, 30, 90, 180, 365)
LIFECYCLE_STAGES = ("new", "unactivated", "active", "silent", "churned")
#: Registered at most this many days ago: "new".
NEW_DAYS = 7
#: Last purchase at most this many days ago: "active".
ACTIVE_DAYS = 30
#: Last purchase at most this many days ago (and more than ACTIVE_DAYS): "silent".
SILENT_DAYS = 90


class CustomerDailyActivity(Model):
    """What one customer did on one day (UTC): the history the facts are derived from."""

    id = fields.BigIntField(primary_key=True)
    # CASCADE: derived data of the customer, meaningless without it.
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.CASCADE, related_name=False
    )
    customer_id: int
    day = fields.DateField()
    spend = fields.BigIntField(default=0)  # fen
    visits = fields.IntField(default=0)
    purchases = fields.IntField(default=0)

    class Meta:
        table = "customer_daily_activity"
        # The unique pair also serves (customer, day range) lookups of recompute_facts.
        unique_together = (("customer", "day"),)
        indexes = (Index(fields=("day",), name="idx_daily_activity_day"),)


class CustomerFacts(Model):
    """One row per customer: what audience rules test, kept current from the daily rows.

    A customer with no row yet counts as zero spend and visits, stage new or unactivated
    by registration date (the rule compiler handles that case).
    """

    id = fields.BigIntField(primary_key=True)
    customer: fields.OneToOneRelation = fields.OneToOneField(
        "models.Customer", on_delete=fields.CASCADE, related_name=False
    )
    spend_7d = fields.BigIntField(default=0)
    spend_30d = fields.BigIntField(default=0)
    spend_90d = fields.BigIntField(default=0)
    spend_180d = fields.BigIntField(default=0)
    spend_365d = fields.BigIntField(default=0)
    visits_7d = fields.IntField(default=0)
    visits_30d = fields.IntField(default=0)
    visits_90d = fields.IntField(default=0)
    visits_180d = fields.IntField(default=0)
    visits_365d = fields.IntField(default=0)
    purchases_total = fields.BigIntField(default=0)
    spend_total = fields.BigIntField(default=0)
    # Dates, not times: activity is recorded per day.
    first_purchase_at = fields.DateField(null=True)
    last_purchase_at = fields.DateField(null=True)
    last_visit_at = fields.DateField(null=True)
    last_active_at = fields.DateField(null=True)
    lifecycle_stage = fields.CharField(max_length=16, default="new")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "customer_facts"
        # Window columns get partial indexes (WHERE column > 0) in the migration: most
        # customers have zero in a short window, and the compiler adds that term so the
        # planner may use them. The stage index carries customer_id so that "in stage X"
        # and "not in stage X" are index-only scans feeding a join.
        indexes = (Index(fields=("lifecycle_stage", "customer_id"), name="idx_customer_facts_stage"),)


class CustomerStoreVisit(Model):
    """Stores a customer has been active in, for the visited_store predicate."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.CASCADE, related_name=False
    )
    customer_id: int
    # RESTRICT: stores are closed (is_active), not deleted, while history refers to them.
    store: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Store", on_delete=fields.RESTRICT, related_name=False
    )
    store_id: int
    visits = fields.IntField(default=0)
    last_visit_at = fields.DateField()

    class Meta:
        table = "customer_store_visits"
        unique_together = (("customer", "store"),)
        indexes = (Index(fields=("store_id", "customer_id"), name="idx_store_visits_store_customer"),)


class Segment(Model):
    """A saved audience rule, reusable by name inside other rules."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    rule = fields.JSONField[dict[str, Any]]()
    description = fields.CharField(max_length=500, default="")
    created_by = fields.BigIntField()  # admin id
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "audience_segments"
