import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# Bargain and assist campaigns (issue 17): the campaign's bargain block, each customer's
# bargain, and each help with its draw's inputs.


class Migration(migrations.Migration):
    dependencies = [("models", "0024_group_buy")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Campaign",
            name="bargain",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
        ops.AddField(
            model_name="Campaign",
            name="red_packet",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
        ops.CreateModel(
            name="Bargain",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("campaign_id", fields.BigIntField()),
                ("customer_id", fields.BigIntField()),
                ("participation_id", fields.BigIntField()),
                ("mode", fields.CharField(max_length=16)),
                ("base_value", fields.BigIntField(default=0)),
                ("start_price", fields.BigIntField()),
                ("floor_price", fields.BigIntField()),
                ("cut_min", fields.BigIntField()),
                ("cut_max", fields.BigIntField()),
                ("helpers_needed", fields.IntField()),
                ("help_limit", fields.IntField()),
                ("price", fields.BigIntField()),
                ("helpers", fields.IntField(default=0)),
                ("seed", fields.CharField(max_length=64)),
                ("expires_at", fields.DatetimeField()),
                ("finished_at", fields.DatetimeField(null=True)),
                ("claimed_at", fields.DatetimeField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "bargains",
                "app": "models",
                "unique_together": (("campaign_id", "customer_id"),),
                "indexes": [Index(fields=["customer_id"], name="idx_bargains_customer")],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="BargainCut",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("bargain_id", fields.BigIntField()),
                ("campaign_id", fields.BigIntField()),
                ("helper_customer_id", fields.BigIntField()),
                ("seq", fields.IntField()),
                ("cut", fields.BigIntField()),
                ("price_before", fields.BigIntField()),
                ("price_after", fields.BigIntField()),
                ("lo", fields.BigIntField()),
                ("hi", fields.BigIntField()),
                ("draw", fields.BigIntField()),
                ("retries", fields.IntField(default=0)),
                ("helped_at", fields.DatetimeField()),
            ],
            options={
                "table": "bargain_cuts",
                "app": "models",
                "unique_together": (("bargain_id", "seq"), ("bargain_id", "helper_customer_id")),
                "indexes": [Index(fields=["campaign_id", "helper_customer_id"], name="idx_bargain_cuts_helper")],
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]
