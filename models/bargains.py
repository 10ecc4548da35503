"""Bargains (砍价) and assists (助力): one customer's bargain in a campaign, and each
friend's help of it (services/forms/bargain.py decides them in Redis; the worker writes
them here, once each)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Bargain(Model):
    """A customer's bargain: one per customer and campaign. ``price`` and ``helpers`` are
    what the persisted cuts make (the live values are in Redis until the worker catches up)."""

    id = fields.BigIntField(primary_key=True)
    campaign_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    participation_id = fields.BigIntField()
    #: bargain, assist or red_packet (the campaign's type). A red packet is a bargain
    #: whose "price" is what is left to expand: start_price = cap - initial value,
    #: floor_price 0, and its value is ``base_value + start_price - price``.
    mode = fields.CharField(max_length=16)
    base_value = fields.BigIntField(default=0)
    start_price = fields.BigIntField()
    floor_price = fields.BigIntField()
    # The rules as they were when it started (the campaign's bargain block).
    cut_min = fields.BigIntField()
    cut_max = fields.BigIntField()
    #: 0: none (a bargain is finished when the draws reach the floor).
    helpers_needed = fields.IntField()
    help_limit = fields.IntField()
    price = fields.BigIntField()
    helpers = fields.IntField(default=0)
    #: The secret the cuts are drawn from (hex); shown once the bargain is finished, so
    #: anyone can replay every draw (docs/forms.md).
    seed = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    claimed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bargains"
        unique_together = (("campaign_id", "customer_id"),)
        indexes = (Index(fields=("customer_id",), name="idx_bargains_customer"),)


class BargainCut(Model):
    """One help: the ``seq``-th of its bargain, by ``helper_customer_id``, with the draw's
    inputs (``lo``, ``hi``, the 48-bit value ``draw`` after ``retries`` rejected ones,
    ``price_before``) so it can be replayed. ``draw`` is -1 when nothing was drawn (the
    last needed helper takes the rest; an assist)."""

    id = fields.BigIntField(primary_key=True)
    bargain_id = fields.BigIntField()
    campaign_id = fields.BigIntField()
    helper_customer_id = fields.BigIntField()
    seq = fields.IntField()
    cut = fields.BigIntField()
    price_before = fields.BigIntField()
    price_after = fields.BigIntField()
    lo = fields.BigIntField()
    hi = fields.BigIntField()
    draw = fields.BigIntField()
    retries = fields.IntField(default=0)
    helped_at = fields.DatetimeField()

    class Meta:
        table = "bargain_cuts"
        unique_together = (("bargain_id", "seq"), ("bargain_id", "helper_customer_id"))
        indexes = (Index(fields=("campaign_id", "helper_customer_id"), name="idx_bargain_cuts_helper"),)
