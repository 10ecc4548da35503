"""Stores and the staff accounts bound to them."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

STAFF_ROLES = ("clerk", "manager")
STORE_STATES = ("open", "closed")


class Store(Model):
    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=128)
    city = fields.CharField(max_length=64)
    latitude = fields.FloatField()
    longitude = fields.FloatField()
    address = fields.CharField(max_length=255, default="")
    # Opening state: a closed store takes no redemptions (its staff may still log in).
    state = fields.CharField(max_length=8, default="open")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stores"


class StaffMember(Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    display_name = fields.CharField(max_length=64)
    role = fields.CharField(max_length=16)
    # RESTRICT: a store with staff history cannot be deleted out from under it.
    store: fields.ForeignKeyRelation[Store] = fields.ForeignKeyField(
        "models.Store", on_delete=fields.RESTRICT, related_name="staff"
    )
    store_id: int
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)
    # As on Admin: in every access token, raised to revoke the tokens already issued.
    token_epoch = fields.IntField(default=0)
    must_change_password = fields.BooleanField(default=False)

    class Meta:
        table = "staff_members"
        indexes = (Index(fields=("store_id",), name="idx_staff_store"),)
