import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0025_bargain")]

    initial = False

    operations = [
        # A lucky_draw's prize table and entry costs (null for every other type).
        ops.AddField(
            model_name="Campaign",
            name="draw",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
        ops.CreateModel(
            name="LuckyDraw",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("draw_id", fields.CharField(max_length=40, unique=True)),
                ("campaign", fields.ForeignKeyField("models.Campaign", source_field="campaign_id", db_constraint=True, to_field="id", related_name=False, on_delete=OnDelete.RESTRICT)),
                ("customer", fields.ForeignKeyField("models.Customer", source_field="customer_id", db_constraint=True, to_field="id", related_name=False, on_delete=OnDelete.RESTRICT)),
                ("prize_key", fields.CharField(max_length=24)),
                ("prize_kind", fields.CharField(max_length=8)),
                ("template_id", fields.BigIntField(null=True)),
                ("claim_id", fields.CharField(max_length=40, null=True)),
                ("prize_points", fields.IntField(default=0)),
                ("entry", fields.CharField(max_length=8)),
                ("points_cost", fields.IntField(default=0)),
                ("day", fields.CharField(max_length=10)),
                ("drawn_at", fields.DatetimeField()),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "lucky_draws",
                "app": "models",
                "indexes": [
                    Index(fields=["campaign_id", "customer_id", "day"], name="idx_lucky_draws_day"),
                    Index(fields=["customer_id", "id"], name="idx_lucky_draws_customer"),
                ],
                "pk_attr": "id",
                "table_description": "One draw of a lucky_draw campaign and what it won (a voucher's claim id, points, or nothing).",
            },  # fmt: skip
            bases=["Model"],
        ),
    ]
