"""Referrals: each customer's invite code and the customers it brought in.

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class InviteCode(Model):
    """A customer's invite code, made the first time it is asked for (one per customer)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.OneToOneRelation = fields.OneToOneField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    code = fields.CharField(max_length=16, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "invite_codes"


class Referral(Model):
    """A new customer who logged in with an inviter's code. Unique per invitee: an
    invitee credits one inviter, once."""

    id = fields.BigIntField(primary_key=True)
    inviter: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    inviter_id: int
    invitee: fields.OneToOneRelation = fields.OneToOneField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    code = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "referrals"
        indexes = (Index(fields=("inviter_id", "id"), name="idx_referrals_inviter"),)
