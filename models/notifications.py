"""Subscribe-message notifications: the customers' allowances per template, the outbox of
messages and the progress markers of fan-outs.

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

NOTIFICATION_KINDS = (
    "new_campaign", "campaign_ending", "reward", "voucher_expiring", "group_result", "bargain_result", "alert"
)  # fmt: skip
#: pending (waiting, maybe for a retry), sending (claimed, WeChat being called), sent,
#: failed (WeChat refused it, or transient errors outlasted the attempts), skipped (no
#: allowance, or the kind has no template), unknown (the send may or may not have reached
#: WeChat: never resent).
NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed", "skipped", "unknown")


class NotifySubscription(Model):
    """How many messages of one template a customer still accepts. Each acceptance the mini
    program reports adds one, each message sent takes one (a conditional UPDATE)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    template_id = fields.CharField(max_length=64)
    remaining = fields.IntField(default=0)
    accepted_total = fields.IntField(default=0)
    # The customer's language at their last acceptance (body language or Accept-Language):
    # messages of this template read campaign texts in it. Null: the campaign's default.
    language = fields.CharField(max_length=16, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notify_subscriptions"
        unique_together = (("customer", "template_id"),)
        indexes = (Index(fields=("template_id", "customer_id"), name="idx_notify_subscriptions_template"),)


class Notification(Model):
    """One message of the outbox, unique per natural key (reward:<participation>,
    voucher_expiring:<voucher>, ...) so an event enqueues once. ``payload`` holds the values
    the template's fields are rendered from. WeChat's answer (errcode, errmsg, msgid) is
    recorded on the row."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=120, unique=True)
    kind = fields.CharField(max_length=32)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    payload = fields.JSONField[dict[str, Any]](default=dict)
    status = fields.CharField(max_length=16, default="pending")
    # The template the allowance was taken from (set when first claimed).
    template_id = fields.CharField(max_length=64, null=True)
    # True while this row holds one unit of the customer's allowance (taken, not given back).
    allowance_held = fields.BooleanField(default=False)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    errcode = fields.IntField(null=True)
    errmsg = fields.CharField(max_length=200, null=True)
    msgid = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notifications"
        indexes = (
            Index(fields=("status", "next_attempt_at", "id"), name="idx_notifications_due"),
            Index(fields=("customer_id", "id"), name="idx_notifications_customer"),
            # The retention purge deletes finished rows by age.
            Index(fields=("finished_at",), name="idx_notifications_finished"),
        )


class NotifyFanout(Model):
    """Progress of one fan-out (new_campaign:<id>, campaign_ending:<id>): recipients are
    enqueued in ascending customer id, ``cursor`` is the last id done, so a crashed pass
    resumes where it stopped."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=80, unique=True)
    cursor = fields.BigIntField(default=0)
    enqueued = fields.IntField(default=0)
    done = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notify_fanouts"
