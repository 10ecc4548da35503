from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_redemptions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CheckIn',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('day', fields.DateField()),
                ('streak', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'checkins', 'app': 'models', 'unique_together': (('customer', 'day'),), 'pk_attr': 'id', 'table_description': "A customer's daily check-in (UTC day) and the streak it continues."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerBadge',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('badge', fields.CharField(max_length=32)),
                ('campaign_id', fields.BigIntField()),
                ('earned_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'customer_badges', 'app': 'models', 'unique_together': (('customer', 'badge'),), 'pk_attr': 'id', 'table_description': 'A badge a customer earned (once per badge name).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Integration',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('key_id', fields.CharField(unique=True, max_length=40)),
                ('secret_encrypted', fields.CharField(max_length=200)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_by', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'integrations', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A POS or CRM system allowed to post events, identified by ``key_id``.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IntegrationEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.RESTRICT)),
                ('external_id', fields.CharField(max_length=64)),
                ('type', fields.CharField(max_length=16)),
                ('status', fields.CharField(default='applied', max_length=16)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('amount', fields.BigIntField(default=0)),
                ('order_ref', fields.CharField(null=True, max_length=64)),
                ('store_id', fields.BigIntField(null=True)),
                ('categories', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('refund_of', fields.CharField(null=True, max_length=64)),
                ('body_hash', fields.CharField(max_length=64)),
                ('result', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'integration_events', 'app': 'models', 'unique_together': (('integration', 'external_id'),), 'indexes': [Index(fields=['integration_id', 'refund_of'], name='idx_integration_events_refund'), Index(fields=['customer_id', 'occurred_at'], name='idx_integration_events_customer')], 'pk_attr': 'id', 'table_description': 'One processed event, unique per (integration, external id): a retry is a replay.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointsBalance',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('balance', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'points_balances', 'app': 'models', 'pk_attr': 'id', 'table_description': "The running balance of a customer's points ledger, never below zero."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointsEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('delta', fields.BigIntField()),
                ('balance_after', fields.BigIntField()),
                ('reason', fields.CharField(max_length=32)),
                ('ref', fields.CharField(unique=True, max_length=80)),
                ('campaign_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'points_entries', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'id'], name='idx_points_entries_customer')], 'pk_attr': 'id', 'table_description': 'An append-only ledger line. ``ref`` is unique: the same cause never counts twice.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProgressEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('participation', fields.ForeignKeyField('models.Participation', source_field='participation_id', db_constraint=True, to_field='id', related_name='progress_entries', on_delete=OnDelete.CASCADE)),
                ('source', fields.CharField(max_length=16)),
                ('ref', fields.CharField(max_length=80)),
                ('delta', fields.BigIntField()),
                ('value_after', fields.BigIntField()),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'progress_entries', 'app': 'models', 'unique_together': (('participation', 'ref'),), 'pk_attr': 'id', 'table_description': "One step of a participation's progress (append-only). ``ref`` names its cause"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RewardGrant',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('participation', fields.ForeignKeyField('models.Participation', source_field='participation_id', db_constraint=True, to_field='id', related_name='grants', on_delete=OnDelete.RESTRICT)),
                ('customer_id', fields.BigIntField()),
                ('campaign_id', fields.BigIntField()),
                ('template_id', fields.BigIntField()),
                ('trigger', fields.CharField(max_length=16)),
                ('status', fields.CharField(default='pending', max_length=16)),
                ('claim_id', fields.CharField(null=True, max_length=40)),
                ('refusal', fields.CharField(null=True, max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'reward_grants', 'app': 'models', 'unique_together': (('participation', 'template_id'),), 'indexes': [Index(fields=['status', 'id'], name='idx_reward_grants_status')], 'pk_attr': 'id', 'table_description': 'A coupon owed to a participant, written in the transaction that decided it and'},
            bases=['Model'],
        ),
    ]
