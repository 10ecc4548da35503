"""Revenue attribution: which campaign a POS/CRM purchase is credited to (issue 18).

One row per order at most (``order_key`` unique), written in the purchase event's
transaction by services.activity.attribution; the rule is in docs/analytics.md.
"""

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Attribution(Model):
    """A purchase credited to a campaign: by the voucher redeemed on its order (``rule``
    ``voucher``) or by the customer's latest join within the attribution window
    (``window``)."""

    id = fields.BigIntField(primary_key=True)
    #: ``<store id or ->:<order_ref>``: one attribution per order, whichever integration
    #: or event posted it first.
    order_key = fields.CharField(max_length=90, unique=True)
    event_id = fields.BigIntField()
    campaign_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    store_id = fields.BigIntField(null=True)
    amount = fields.BigIntField()
    rule = fields.CharField(max_length=16)  # voucher, window
    redemption_id = fields.BigIntField(null=True)
    participation_id = fields.BigIntField(null=True)
    occurred_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "attributions"
        indexes = (
            Index(fields=("campaign_id", "occurred_at"), name="idx_attributions_campaign"),
            Index(fields=("event_id",), name="idx_attributions_event"),
        )
