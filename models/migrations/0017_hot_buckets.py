from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0016_content_launch")]

    initial = False

    operations = [
        # Existing coupons keep one Redis slot (services/stock/hot.py: hot coupons).
        ops.AddField(
            model_name="CouponTemplate",
            name="stock_buckets",
            field=fields.IntField(default=1),
        ),
    ]
