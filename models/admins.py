"""Admin accounts for the management endpoints."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

ADMIN_ROLES = ("operator", "reviewer", "approver", "superadmin")


class Admin(Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharField(max_length=16)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "admins"
