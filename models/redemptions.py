"""Redemptions of vouchers at a store's till, and the outbox of voucher reminders."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Redemption(Model):
    """One use of a voucher at a store, by a staff member.

    A voucher may have several rows over time (redeemed, reversed, redeemed again), at most
    one of them not reversed. The idempotency key is unique per store, the order reference
    per store and voucher (an order carries several vouchers); NULLs are distinct on both
    databases, so rows without them never collide.
    Money in fen. The voucher's face value, coupon, campaign and customer are copied here
    at redemption time so lists and totals read one table.
    """

    id = fields.BigIntField(primary_key=True)
    voucher: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Voucher", on_delete=fields.RESTRICT, related_name="redemptions"
    )
    voucher_id: int
    store: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Store", on_delete=fields.RESTRICT, related_name="redemptions"
    )
    store_id: int
    staff: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.StaffMember", on_delete=fields.RESTRICT, related_name="redemptions"
    )
    staff_id: int
    customer_id = fields.BigIntField()
    campaign_id = fields.BigIntField()
    template_id = fields.BigIntField()
    face_value = fields.BigIntField()
    order_ref = fields.CharField(max_length=64, null=True)
    order_amount = fields.BigIntField(null=True)
    idempotency_key = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()
    reversed_at = fields.DatetimeField(null=True)
    reversed_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.StaffMember", null=True, on_delete=fields.RESTRICT, related_name="reversals"
    )
    reversed_by_id: int | None
    reverse_reason = fields.CharField(max_length=500, null=True)

    class Meta:
        table = "redemptions"
        unique_together = (("store", "order_ref", "voucher"), ("store", "idempotency_key"))
        indexes = (
            Index(fields=("store_id", "created_at"), name="idx_redemptions_store_created"),
            Index(fields=("created_at",), name="idx_redemptions_created"),
            Index(fields=("campaign_id", "created_at"), name="idx_redemptions_campaign_created"),
            Index(fields=("staff_id",), name="idx_redemptions_staff"),
            Index(fields=("voucher_id",), name="idx_redemptions_voucher"),
        )


#: The one kind of voucher reminder today: queued by the expiry job, sent by the notifier.
REMINDER_KIND = "expiring_soon"


class VoucherReminder(Model):
    """Outbox of reminders about vouchers (kind expiring_soon) for their holders, queued by the
    expiry job at most once per voucher and kind. A notifications sender sets sent_at."""

    id = fields.BigIntField(primary_key=True)
    voucher: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Voucher", on_delete=fields.CASCADE, related_name="reminders"
    )
    voucher_id: int
    customer_id = fields.BigIntField()
    kind = fields.CharField(max_length=32)
    valid_until = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "voucher_reminders"
        unique_together = (("voucher", "kind"),)
        indexes = (Index(fields=("sent_at", "id"), name="idx_voucher_reminders_unsent"),)
