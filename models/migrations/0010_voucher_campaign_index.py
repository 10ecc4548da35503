from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_automation')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Voucher',
            index=Index(fields=['campaign_id', 'issued_at'], name='idx_vouchers_campaign_issued'),
        ),
    ]
