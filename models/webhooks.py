"""Webhooks out and alerts: the endpoints admins configured, the outbox of events written in
the transaction of the change they describe, the deliveries of each event to each endpoint,
and the alerts raised by the alert rules (one row per episode).

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

#: The event types an endpoint may subscribe to.
WEBHOOK_EVENTS = (
    "voucher.issued",
    "voucher.redeemed",
    "voucher.reversed",
    "campaign.state_changed",
    "participation.completed",
    "points.changed",
    "alert.raised",
)
#: pending (waiting, maybe for a retry), delivering (claimed by the worker), delivered.
DELIVERY_STATUSES = ("pending", "delivering", "delivered")


class Webhook(Model):
    """An endpoint events are posted to. ``events`` is the subscribed types between commas
    (",voucher.issued,points.changed,") so the writers of the outbox test it with LIKE on both
    databases. The signing secret is stored encrypted (needed in clear to sign) and shown once.
    ``paused_at`` is set by the worker after too many consecutive failures (active stays true)."""

    id = fields.BigIntField(primary_key=True)
    url = fields.CharField(max_length=500)
    events = fields.CharField(max_length=400)
    secret_encrypted = fields.CharField(max_length=200)
    active = fields.BooleanField(default=True)
    paused_at = fields.DatetimeField(null=True)
    consecutive_failures = fields.IntField(default=0)
    created_by = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhooks"


class WebhookEvent(Model):
    """One event of the outbox, written in the transaction of its change. Its id is the
    event id receivers dedupe on. ``entity`` (voucher:12, campaign:3, ...) orders deliveries:
    an entity's events reach an endpoint in id order. ``fanned_out`` is set once its
    deliveries exist."""

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=40)
    entity = fields.CharField(max_length=80)
    payload = fields.JSONField[dict[str, Any]](default=dict)
    fanned_out = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_events"
        indexes = (Index(fields=("fanned_out", "id"), name="idx_webhook_events_fanout"),)


class WebhookDelivery(Model):
    """One event to one endpoint: its attempts and the endpoint's last answer."""

    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField(
        "models.Webhook", on_delete=fields.CASCADE, related_name=False
    )
    webhook_id: int
    event: fields.ForeignKeyRelation[WebhookEvent] = fields.ForeignKeyField(
        "models.WebhookEvent", on_delete=fields.CASCADE, related_name=False
    )
    event_id: int
    entity = fields.CharField(max_length=80)
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    response_status = fields.IntField(null=True)
    response_body = fields.CharField(max_length=500, null=True)
    error = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_deliveries"
        indexes = (
            Index(fields=("status", "next_attempt_at", "event_id"), name="idx_webhook_deliveries_due"),
            Index(fields=("webhook_id", "entity", "event_id"), name="idx_webhook_deliveries_entity"),
        )


class Alert(Model):
    """One episode of an alert rule for one subject (a campaign, an endpoint, or everything):
    raised once, cleared when back to normal. ``open_key`` holds ``key`` while the episode is
    open and null after, so one subject has at most one open episode (unique)."""

    id = fields.BigIntField(primary_key=True)
    rule = fields.CharField(max_length=40)
    key = fields.CharField(max_length=120)
    open_key = fields.CharField(max_length=120, null=True, unique=True)
    campaign_id = fields.BigIntField(null=True)
    status = fields.CharField(max_length=16, default="raised")
    message = fields.CharField(max_length=300)
    details = fields.JSONField[dict[str, Any]](default=dict)
    raised_at = fields.DatetimeField()
    cleared_at = fields.DatetimeField(null=True)

    class Meta:
        table = "alerts"
        indexes = (Index(fields=("status", "id"), name="idx_alerts_status"),)


class CampaignAlertRule(Model):
    """A campaign's alert rules where they differ from the settings (ALERT_*): the
    campaign rules it mutes and the thresholds it overrides. A null threshold means the
    setting applies, so a later change of the setting reaches every campaign not overriding it."""

    id = fields.BigIntField(primary_key=True)
    campaign: fields.OneToOneRelation = fields.OneToOneField(
        "models.Campaign", on_delete=fields.CASCADE, related_name=False
    )
    campaign_id: int
    # The muted rule names (a list), each one of the campaign rules.
    muted = fields.JSONField[list[str]](default=list)
    budget_horizon_hours = fields.FloatField(null=True)
    days = fields.IntField(null=True)
    spike_factor = fields.FloatField(null=True)
    drop_factor = fields.FloatField(null=True)
    min_baseline = fields.FloatField(null=True)
    updated_by = fields.BigIntField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaign_alert_rules"
