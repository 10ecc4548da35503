from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_audience')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Redemption',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('voucher', fields.ForeignKeyField('models.Voucher', source_field='voucher_id', db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.RESTRICT)),
                ('store', fields.ForeignKeyField('models.Store', source_field='store_id', db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.RESTRICT)),
                ('staff', fields.ForeignKeyField('models.StaffMember', source_field='staff_id', db_constraint=True, to_field='id', related_name='redemptions', on_delete=OnDelete.RESTRICT)),
                ('customer_id', fields.BigIntField()),
                ('campaign_id', fields.BigIntField()),
                ('template_id', fields.BigIntField()),
                ('face_value', fields.BigIntField()),
                ('order_ref', fields.CharField(null=True, max_length=64)),
                ('order_amount', fields.BigIntField(null=True)),
                ('idempotency_key', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('reversed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('reversed_by', fields.ForeignKeyField('models.StaffMember', source_field='reversed_by_id', null=True, db_constraint=True, to_field='id', related_name='reversals', on_delete=OnDelete.RESTRICT)),
                ('reverse_reason', fields.CharField(null=True, max_length=500)),
            ],
            options={'table': 'redemptions', 'app': 'models', 'unique_together': (('store', 'order_ref'), ('store', 'idempotency_key')), 'indexes': [Index(fields=['store_id', 'created_at'], name='idx_redemptions_store_created'), Index(fields=['created_at'], name='idx_redemptions_created'), Index(fields=['campaign_id', 'created_at'], name='idx_redemptions_campaign_created'), Index(fields=['staff_id'], name='idx_redemptions_staff'), Index(fields=['voucher_id'], name='idx_redemptions_voucher')], 'pk_attr': 'id', 'table_description': 'One use of a voucher at a store, by a staff member.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VoucherReminder',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('voucher', fields.ForeignKeyField('models.Voucher', source_field='voucher_id', db_constraint=True, to_field='id', related_name='reminders', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.BigIntField()),
                ('kind', fields.CharField(max_length=32)),
                ('valid_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'voucher_reminders', 'app': 'models', 'unique_together': (('voucher', 'kind'),), 'indexes': [Index(fields=['sent_at', 'id'], name='idx_voucher_reminders_unsent')], 'pk_attr': 'id', 'table_description': 'Outbox of reminders about vouchers (kind expiring_soon) for their holders, queued by the'},
            bases=['Model'],
        ),
    ]
