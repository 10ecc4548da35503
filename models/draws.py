"""Lucky draws: one row per draw a customer made, written by the draws worker from the
draw script's stream (services/forms/draw.py), unique on the script's draw id.

No docstring or description here may contain a semicolon: tortoise copies them into SQL
comments and its SQLite migration runner splits statements on that character.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

PRIZE_KINDS = ("coupon", "points", "none")
ENTRY_KINDS = ("free", "points")


class LuckyDraw(Model):
    """One draw of a lucky_draw campaign and what it won (a voucher's claim id, points, or nothing)."""

    id = fields.BigIntField(primary_key=True)
    draw_id = fields.CharField(max_length=40, unique=True)
    campaign: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Campaign", on_delete=fields.RESTRICT, related_name=False
    )
    campaign_id: int
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name=False
    )
    customer_id: int
    prize_key = fields.CharField(max_length=24)
    # coupon, points or none
    prize_kind = fields.CharField(max_length=8)
    template_id = fields.BigIntField(null=True)
    # The voucher's claim id (the claims worker writes the voucher under it)
    claim_id = fields.CharField(max_length=40, null=True)
    prize_points = fields.IntField(default=0)
    # free or points (what the entry cost)
    entry = fields.CharField(max_length=8)
    points_cost = fields.IntField(default=0)
    # The day the draw counted against, in the draw's time zone (YYYY-MM-DD)
    day = fields.CharField(max_length=10)
    drawn_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "lucky_draws"
        indexes = (
            Index(fields=("campaign_id", "customer_id", "day"), name="idx_lucky_draws_day"),
            Index(fields=("customer_id", "id"), name="idx_lucky_draws_customer"),
        )
