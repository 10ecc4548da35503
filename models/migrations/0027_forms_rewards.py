from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# Social-form rewards (issue 17): a reward grant may carry its own face value (a
# bargain's cut voucher, an expanding red packet claimed as a voucher), which the grant
# script issues instead of the coupon's.


class Migration(migrations.Migration):
    dependencies = [("models", "0026_lucky_draw")]

    initial = False

    operations = [
        ops.AddField(
            model_name="RewardGrant",
            name="face_value",
            field=fields.BigIntField(null=True),
        ),
    ]
