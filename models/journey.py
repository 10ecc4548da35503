"""The customer journey: integrations and their events, progress history, check-ins,
the points ledger, badges and reward grants.

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

EVENT_TYPES = ("purchase", "visit", "refund", "profile")
EVENT_STATUSES = ("applied", "refunded", "pending")
GRANT_STATUSES = ("pending", "issued", "refused")


class Integration(Model):
    """A POS or CRM system allowed to post events, identified by ``key_id``.

    The HMAC secret is needed in clear to verify signatures, so it is stored encrypted
    (AES-256-GCM under a key derived from SECRET_KEY), never hashed, and shown once.
    """

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    key_id = fields.CharField(max_length=40, unique=True)
    secret_encrypted = fields.CharField(max_length=200)
    # The secret before the last rotation, still accepted until the grace period ends.
    previous_secret_encrypted = fields.CharField(max_length=200, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    is_active = fields.BooleanField(default=True)
    created_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "integrations"


class IntegrationEvent(Model):
    """One processed event, unique per (integration, external id): a retry is a replay."""

    id = fields.BigIntField(primary_key=True)
    integration: fields.ForeignKeyRelation[Integration] = fields.ForeignKeyField(
        "models.Integration", on_delete=fields.RESTRICT, related_name="events"
    )
    integration_id: int
    external_id = fields.CharField(max_length=64)
    type = fields.CharField(max_length=16)
    # applied, refunded (a purchase taken back), pending (a refund waiting for its purchase)
    status = fields.CharField(max_length=16, default="applied")
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    occurred_at = fields.DatetimeField()
    amount = fields.BigIntField(default=0)
    order_ref = fields.CharField(max_length=64, null=True)
    store_id = fields.BigIntField(null=True)
    categories = fields.JSONField[list[Any]](default=list)
    # A refund: the external id of the purchase it takes back.
    refund_of = fields.CharField(max_length=64, null=True)
    # sha256 of the canonical body: the same external id with another body is a conflict.
    body_hash = fields.CharField(max_length=64)
    result = fields.JSONField[dict[str, Any]](default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "integration_events"
        unique_together = (("integration", "external_id"),)
        indexes = (
            Index(fields=("integration_id", "refund_of"), name="idx_integration_events_refund"),
            Index(fields=("customer_id", "occurred_at"), name="idx_integration_events_customer"),
        )


class ProgressEntry(Model):
    """One step of a participation's progress (append-only). ``ref`` names its cause
    (an event, a check-in, a refund), unique per participation."""

    id = fields.BigIntField(primary_key=True)
    participation: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Participation", on_delete=fields.CASCADE, related_name="progress_entries"
    )
    participation_id: int
    source = fields.CharField(max_length=16)  # purchase, visit, refund, checkin
    ref = fields.CharField(max_length=80)
    delta = fields.BigIntField()
    value_after = fields.BigIntField()
    occurred_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "progress_entries"
        unique_together = (("participation", "ref"),)


class CheckIn(Model):
    """A customer's daily check-in (UTC day) and the streak it continues."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    day = fields.DateField()
    streak = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "checkins"
        unique_together = (("customer", "day"),)


class PointsBalance(Model):
    """The running balance of a customer's points ledger, never below zero."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.OneToOneRelation = fields.OneToOneField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    balance = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "points_balances"


class PointsEntry(Model):
    """An append-only ledger line. ``ref`` is unique: the same cause never counts twice."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    delta = fields.BigIntField()
    balance_after = fields.BigIntField()
    reason = fields.CharField(max_length=32)  # purchase, refund, campaign_reward, manual
    ref = fields.CharField(max_length=80, unique=True)
    campaign_id = fields.BigIntField(null=True)
    # A manual adjustment: the admin's stated reason and who made it.
    note = fields.CharField(max_length=200, null=True)
    admin_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "points_entries"
        indexes = (Index(fields=("customer_id", "id"), name="idx_points_entries_customer"),)


class CustomerBadge(Model):
    """A badge a customer earned (once per badge name)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    badge = fields.CharField(max_length=32)
    campaign_id = fields.BigIntField()
    earned_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "customer_badges"
        unique_together = (("customer", "badge"),)


class RewardGrant(Model):
    """A coupon owed to a customer, written in the transaction that decided it and then
    issued through the stock script. ``ref`` names its cause and is unique: a
    participation's reward (reward:<participation>:<coupon>, also unique per
    participation and coupon), a points exchange (exchange:<customer>:<key>, with no
    participation), or a social form's voucher (bargain:<bargain>, services/forms)."""

    id = fields.BigIntField(primary_key=True)
    participation: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Participation", null=True, on_delete=fields.RESTRICT, related_name="grants"
    )
    participation_id: int | None
    ref = fields.CharField(max_length=80, unique=True)
    customer_id = fields.BigIntField()
    campaign_id = fields.BigIntField()
    template_id = fields.BigIntField()
    trigger = fields.CharField(max_length=16)  # join, completion, exchange, bargain, red_packet
    # Fen: the voucher's own face value (a bargain's cut voucher, a red packet claimed as
    # a voucher), issued and counted against the budget instead of the coupon's. Null:
    # the coupon's face value.
    face_value = fields.BigIntField(null=True)
    status = fields.CharField(max_length=16, default="pending")
    # The claim id of the voucher once issued, or why it was refused (sold_out, limit, budget).
    claim_id = fields.CharField(max_length=40, null=True)
    refusal = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "reward_grants"
        unique_together = (("participation", "template_id"),)
        indexes = (Index(fields=("status", "id"), name="idx_reward_grants_status"),)
