from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_referrals_exchange')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=120)),
                ('kind', fields.CharField(max_length=32)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('template_id', fields.CharField(null=True, max_length=64)),
                ('allowance_held', fields.BooleanField(default=False)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('errcode', fields.IntField(null=True)),
                ('errmsg', fields.CharField(null=True, max_length=200)),
                ('msgid', fields.CharField(null=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notifications', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at', 'id'], name='idx_notifications_due'), Index(fields=['customer_id', 'id'], name='idx_notifications_customer')], 'pk_attr': 'id', 'table_description': 'One message of the outbox, unique per natural key (reward:<participation>,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotifyFanout',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=80)),
                ('cursor', fields.BigIntField(default=0)),
                ('enqueued', fields.IntField(default=0)),
                ('done', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notify_fanouts', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Progress of one fan-out (new_campaign:<id>, campaign_ending:<id>): recipients are'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotifySubscription',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('template_id', fields.CharField(max_length=64)),
                ('remaining', fields.IntField(default=0)),
                ('accepted_total', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notify_subscriptions', 'app': 'models', 'unique_together': (('customer', 'template_id'),), 'indexes': [Index(fields=['template_id', 'customer_id'], name='idx_notify_subscriptions_template')], 'pk_attr': 'id', 'table_description': 'How many messages of one template a customer still accepts. Each acceptance the mini'},
            bases=['Model'],
        ),
    ]
