from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# Customer service (issue 15): tier changes with their source, the phone suffix column
# that makes a search by a number's last digits an index lookup, manual points notes,
# and vouchers' manual grants and voids.


async def backfill_phone_suffix(apps, schema_editor):
    # Numbers bound before this migration: their last four characters (WeChat sends digits).
    tail = "right(phone_number, 4)" if schema_editor.DIALECT == "postgres" else "substr(phone_number, -4)"
    await schema_editor.client.execute_script(
        f'UPDATE "customers" SET "phone_suffix" = {tail} WHERE "phone_number" IS NOT NULL'
    )


async def nothing(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [('models', '0013_accounts_access')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TierChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('from_tier', fields.CharField(max_length=16)),
                ('to_tier', fields.CharField(max_length=16)),
                ('source', fields.CharField(max_length=16)),
                ('admin_id', fields.BigIntField(null=True)),
                ('integration_id', fields.BigIntField(null=True)),
                ('reason', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'tier_changes', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'id'], name='idx_tier_changes_customer')], 'pk_attr': 'id', 'table_description': "One change of a customer's membership tier and where it came from (an admin, with"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Customer',
            name='phone_suffix',
            field=fields.CharField(null=True, max_length=4),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['phone_suffix'], name='idx_customers_phone_suffix'),
        ),
        ops.RunPython(backfill_phone_suffix, nothing),
        ops.AddField(
            model_name='PointsEntry',
            name='admin_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='PointsEntry',
            name='note',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Voucher',
            name='granted_by',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Voucher',
            name='stock_returned',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Voucher',
            name='void_reason',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Voucher',
            name='voided_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Voucher',
            name='voided_by',
            field=fields.BigIntField(null=True),
        ),
    ]
