"""A customer's participation in a campaign (joined, and whether completed)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Participation(Model):
    id = fields.BigIntField(primary_key=True)
    campaign: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.RESTRICT, related_name="participations"
    )
    campaign_id: int
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name="participations"
    )
    customer_id: int
    status = fields.CharField(max_length=16, default="joined")  # joined, completed
    progress = fields.BigIntField(default=0)
    joined_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "participations"
        unique_together = (("campaign", "customer"),)
        indexes = (Index(fields=("customer_id", "status"), name="idx_participations_customer"),)
