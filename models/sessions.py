"""Refresh tokens: one row per issued token, grouped in families for reuse detection."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

SUBJECT_KINDS = ("customer", "staff", "admin")


class RefreshToken(Model):
    id = fields.BigIntField(primary_key=True)
    # SHA-256 of the token; the token itself is never stored.
    token_hash = fields.CharField(max_length=64, unique=True)
    # All tokens descended from one login share a family; reuse of any revokes all.
    family_id = fields.CharField(max_length=32)
    subject_kind = fields.CharField(max_length=16)
    subject_id = fields.BigIntField()
    # Role and store at issue time, copied into rotated access tokens.
    role = fields.CharField(max_length=32, null=True)
    store_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"
        indexes = (Index(fields=("family_id",), name="idx_refresh_tokens_family"),)
