"""Group buys (拼团): the groups customers open in a ``group_buy`` campaign and their
members. Written by the group worker from the decisions the Redis script made
(services/forms/group_buy.py): each row is unique by what the decision names (a group's
id, a member's place in its group), so writing a decision twice is a no-op."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

#: open: taking members; filled: reached its size (rewards granted); failed: expired unfilled.
GROUP_STATUSES = ("open", "filled", "failed")


class GroupBuy(Model):
    # Allocated in Redis when the group is opened (the decision names it), not by the
    # database: the row is written later, by the worker.
    id = fields.BigIntField(primary_key=True, generated=False)
    campaign_id = fields.BigIntField()
    leader_id = fields.BigIntField()
    size = fields.IntField()
    status = fields.CharField(max_length=16, default="open")
    # Members added by virtual_fill when the group expired (shown as such, never rewarded).
    virtual_members = fields.IntField(default=0)
    opened_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "group_buys"
        indexes = (
            Index(fields=("status", "expires_at"), name="idx_group_buys_status_expiry"),
            Index(fields=("campaign_id", "status"), name="idx_group_buys_campaign"),
        )


class GroupMember(Model):
    """One place in a group: a customer, or a virtual member (no customer)."""

    id = fields.BigIntField(primary_key=True)
    group_id = fields.BigIntField()
    position = fields.IntField()  # 1 is the opener
    customer_id = fields.BigIntField(null=True)
    virtual = fields.BooleanField(default=False)
    joined_at = fields.DatetimeField()
    # Set in the transaction that granted this member's reward (a filled group, real members).
    rewarded = fields.BooleanField(default=False)

    class Meta:
        table = "group_members"
        unique_together = (("group_id", "position"), ("group_id", "customer_id"))
        indexes = (Index(fields=("customer_id",), name="idx_group_members_customer"),)
