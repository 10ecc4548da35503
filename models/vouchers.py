"""Vouchers: coupons a customer holds, each born from one claim (grab or grant)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

VOUCHER_STATUSES = ("available", "used", "expired", "void")


class Voucher(Model):
    id = fields.BigIntField(primary_key=True)
    # The claim that created it (from the Redis stream or a grant): unique, so
    # persisting a claim twice is a no-op.
    claim_id = fields.CharField(max_length=40, unique=True)
    template: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.CouponTemplate", on_delete=fields.RESTRICT, related_name="vouchers"
    )
    template_id: int
    campaign_id = fields.BigIntField()
    customer: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Customer", on_delete=fields.RESTRICT, related_name="vouchers"
    )
    customer_id: int
    code = fields.CharField(max_length=24, unique=True)
    status = fields.CharField(max_length=16, default="available")
    face_value = fields.BigIntField()
    valid_from = fields.DatetimeField()
    valid_until = fields.DatetimeField()
    issued_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_store_id = fields.BigIntField(null=True)
    used_by_staff_id = fields.BigIntField(null=True)
    # A manual grant by customer service: the admin who granted it (null for grabs and
    # rewards). Carried on the claim through the stream.
    granted_by = fields.BigIntField(null=True)
    # A void by customer service: when, by whom and why. ``stock_returned`` says its
    # stock and budget went back to the coupon (a claw-back's void keeps them spent), so
    # loading and reconciling the coupon do not count it as issued.
    voided_at = fields.DatetimeField(null=True)
    voided_by = fields.BigIntField(null=True)
    void_reason = fields.CharField(max_length=200, null=True)
    stock_returned = fields.BooleanField(default=False)
    # A grab of a campaign under a running experiment: the experiment and the arm whose
    # stock share it took (services/stock/arms.py). Null for every other voucher.
    experiment_id = fields.BigIntField(null=True)
    experiment_arm = fields.SmallIntField(null=True)

    class Meta:
        table = "vouchers"
        indexes = (
            Index(fields=("customer_id", "status"), name="idx_vouchers_customer_status"),
            Index(fields=("template_id", "customer_id"), name="idx_vouchers_template_customer"),
            # The expiry job looks for available vouchers past valid_until.
            Index(fields=("status", "valid_until"), name="idx_vouchers_status_valid_until"),
            # Analytics counts a campaign's vouchers per day of issue.
            Index(fields=("campaign_id", "issued_at"), name="idx_vouchers_campaign_issued"),
        )
