from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# Revenue attribution (issue 18): one row per order, credited to a campaign.


class Migration(migrations.Migration):
    dependencies = [("models", "0022_webhooks")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Attribution",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("order_key", fields.CharField(max_length=90, unique=True)),
                ("event_id", fields.BigIntField()),
                ("campaign_id", fields.BigIntField()),
                ("customer_id", fields.BigIntField()),
                ("store_id", fields.BigIntField(null=True)),
                ("amount", fields.BigIntField()),
                ("rule", fields.CharField(max_length=16)),
                ("redemption_id", fields.BigIntField(null=True)),
                ("participation_id", fields.BigIntField(null=True)),
                ("occurred_at", fields.DatetimeField()),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "attributions",
                "app": "models",
                "indexes": [
                    Index(fields=["campaign_id", "occurred_at"], name="idx_attributions_campaign"),
                    Index(fields=["event_id"], name="idx_attributions_event"),
                ],
                "pk_attr": "id",
                "table_description": "A purchase credited to a campaign",
            },
            bases=["Model"],
        ),
    ]
