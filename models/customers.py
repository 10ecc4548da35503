"""Customers: people who log in through the mini program."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

MEMBERSHIP_TIERS = ("standard", "silver", "gold", "platinum")


class Customer(Model):
    id = fields.BigIntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True)
    unionid = fields.CharField(max_length=64, null=True)
    # WeChat's per-login secret. Server-side only: never serialized, never logged.
    session_key = fields.CharField(max_length=64, null=True)
    nickname = fields.CharField(max_length=64, null=True)
    interest_tags = fields.JSONField[list[str]](default=list)
    city = fields.CharField(max_length=64, null=True)
    preferred_store: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Store", null=True, on_delete=fields.SET_NULL, related_name=False
    )
    preferred_store_id: int | None
    phone_number = fields.CharField(max_length=32, null=True)
    phone_country_code = fields.CharField(max_length=8, null=True)
    phone_bound_at = fields.DatetimeField(null=True)
    membership_tier = fields.CharField(max_length=16, default="standard")
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    # Set when the personal data was erased (services/privacy): the row stays, under a
    # tombstone openid, for the vouchers, redemptions and ledger that name it.
    erased_at = fields.DatetimeField(null=True)

    class Meta:
        table = "customers"
        indexes = (Index(fields=("unionid",), name="idx_customers_unionid"),)

    def __str__(self) -> str:  # never include session_key
        return f"Customer({self.id})"

    __repr__ = __str__
