"""The audit log: every admin action, who, when, and what changed."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class AuditEntry(Model):
    id = fields.BigIntField(primary_key=True)
    actor_kind = fields.CharField(max_length=16)  # admin, staff, system
    actor_id = fields.BigIntField(null=True)
    action = fields.CharField(max_length=64)  # e.g. campaign.create, campaign.approve
    entity_type = fields.CharField(max_length=32)
    entity_id = fields.BigIntField(null=True)
    before = fields.JSONField[dict[str, Any] | None](null=True)
    after = fields.JSONField[dict[str, Any] | None](null=True)
    request_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "audit_log"
        indexes = (
            Index(fields=("entity_type", "entity_id"), name="idx_audit_entity"),
            Index(fields=("actor_kind", "actor_id"), name="idx_audit_actor"),
        )
