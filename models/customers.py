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
    # The number's last four digits, kept beside it so that customer service finds a
    # customer by them through an index (a LIKE '%1234' scans every row).
    phone_suffix = fields.CharField(max_length=4, null=True)
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
        indexes = (
            Index(fields=("unionid",), name="idx_customers_unionid"),
            Index(fields=("phone_suffix",), name="idx_customers_phone_suffix"),
        )

    def __str__(self) -> str:  # never include session_key
        return f"Customer({self.id})"

    __repr__ = __str__


TIER_SOURCES = ("admin", "integration")


def phone_suffix_of(phone_number: str | None) -> str | None:
    """The last four digits of a number (None without a number): what the index holds."""
    if not phone_number:
        return None
    digits = "".join(ch for ch in phone_number if ch.isdigit())
    return digits[-4:] or None


class TierChange(Model):
    """One change of a customer's membership tier and where it came from (an admin, with
    ``admin_id``, or an integration's profile event, with ``integration_id``)."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    from_tier = fields.CharField(max_length=16)
    to_tier = fields.CharField(max_length=16)
    source = fields.CharField(max_length=16)
    admin_id = fields.BigIntField(null=True)
    integration_id = fields.BigIntField(null=True)
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tier_changes"
        indexes = (Index(fields=("customer_id", "id"), name="idx_tier_changes_customer"),)
