from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_journey')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Voucher',
            index=Index(fields=['status', 'valid_until'], name='idx_vouchers_status_valid_until'),
        ),
    ]
