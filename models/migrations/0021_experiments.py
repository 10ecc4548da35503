from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [("models", "0018_approval_diff")]

    initial = False

    operations = [
        ops.CreateModel(
            name='Experiment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='experiments', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=100)),
                ('status', fields.CharField(default='draft', max_length=16)),
                ('salt', fields.CharField(max_length=32)),
                ('bucket_version', fields.IntField(default=1)),
                ('arms', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('primary_metric', fields.CharField(max_length=16)),
                ('guardrails', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('traffic_percent', fields.IntField(default=100)),
                ('layer', fields.CharField(null=True, max_length=64)),
                ('traffic_lo', fields.IntField(null=True)),
                ('traffic_hi', fields.IntField(null=True)),
                ('pre_period_days', fields.IntField(default=28)),
                ('planned_exposures', fields.IntField(default=10000)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_by', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'experiments', 'app': 'models', 'indexes': [Index(fields=['campaign_id'], name='idx_experiments_campaign'), Index(fields=['status'], name='idx_experiments_status')], 'pk_attr': 'id', 'table_description': 'An experiment on one campaign. ``arms`` is the list of arms in order (the first is'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExperimentExposure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('experiment', fields.ForeignKeyField('models.Experiment', source_field='experiment_id', db_constraint=True, to_field='id', related_name='exposures', on_delete=OnDelete.RESTRICT)),
                ('customer_id', fields.BigIntField()),
                ('arm', fields.SmallIntField()),
                ('bucket_version', fields.IntField()),
                ('surface', fields.CharField(max_length=16)),
                ('exposed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'experiment_exposures', 'app': 'models', 'unique_together': (('experiment', 'customer_id'),), 'indexes': [Index(fields=['experiment_id', 'arm'], name='idx_experiment_exposures_arm')], 'pk_attr': 'id', 'table_description': "A customer's first exposure to an experiment, with the arm they were given"},
            bases=['Model'],
        ),
    ]
