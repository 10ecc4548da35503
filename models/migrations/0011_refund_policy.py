from tortoise import fields, migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('models', '0010_voucher_campaign_index')]

    initial = False

    operations = [
        # Existing campaigns take the default: a refund below the target claws the reward back.
        ops.AddField(
            model_name='Campaign',
            name='refund_policy',
            field=fields.CharField(default='claw_back', max_length=16),
        ),
    ]
