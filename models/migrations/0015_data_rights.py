from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0014_customer_service")]

    initial = False

    operations = [
        # An erased customer keeps its row (under a tombstone openid): finance rows name it.
        ops.AddField(
            model_name="Customer",
            name="erased_at",
            field=fields.DatetimeField(null=True),
        ),
        # The retention purge deletes finished outbox rows by age.
        ops.AddIndex(
            model_name="Notification",
            index=Index(fields=["finished_at"], name="idx_notifications_finished"),
        ),
    ]
