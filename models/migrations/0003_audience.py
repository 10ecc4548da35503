from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


# Indexes the ORM cannot declare: partial ones (WHERE column > 0) on the window columns,
# on SQLite and PostgreSQL alike, indexes on the customers table for the predicates that
# filter it, and a GIN index for interest tags (jsonb ?| operator) on PostgreSQL only.
_WINDOW_COLUMNS = [f"{kind}_{days}d" for kind in ("spend", "visits") for days in (7, 30, 90, 180, 365)]
_PORTABLE_INDEXES = [
    *(
        (f"idx_customer_facts_{column}", f'CREATE INDEX "idx_customer_facts_{column}" ON "customer_facts" ("{column}") WHERE "{column}" > 0')
        for column in _WINDOW_COLUMNS
    ),
    ("idx_aud_customers_city_tier", 'CREATE INDEX "idx_aud_customers_city_tier" ON "customers" ("city", "membership_tier")'),
    ("idx_aud_customers_tier", 'CREATE INDEX "idx_aud_customers_tier" ON "customers" ("membership_tier")'),
    ("idx_aud_customers_created", 'CREATE INDEX "idx_aud_customers_created" ON "customers" ("created_at")'),
    ("idx_aud_customers_pref_store", 'CREATE INDEX "idx_aud_customers_pref_store" ON "customers" ("preferred_store_id")'),
]
_POSTGRES_INDEXES = [
    ("idx_aud_customers_tags", 'CREATE INDEX "idx_aud_customers_tags" ON "customers" USING GIN ("interest_tags")'),
]


def _indexes_for(schema_editor):
    if schema_editor.DIALECT == "postgres":
        return _PORTABLE_INDEXES + _POSTGRES_INDEXES
    return _PORTABLE_INDEXES


async def create_indexes(apps, schema_editor):
    for _name, sql in _indexes_for(schema_editor):
        await schema_editor.client.execute_query(sql)


async def drop_indexes(apps, schema_editor):
    for name, _sql in _indexes_for(schema_editor):
        await schema_editor.client.execute_query(f'DROP INDEX IF EXISTS "{name}"')

class Migration(migrations.Migration):
    dependencies = [('models', '0002_campaigns')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CustomerDailyActivity',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('spend', fields.BigIntField(default=0)),
                ('visits', fields.IntField(default=0)),
                ('purchases', fields.IntField(default=0)),
            ],
            options={'table': 'customer_daily_activity', 'app': 'models', 'unique_together': (('customer', 'day'),), 'indexes': [Index(fields=['day'], name='idx_daily_activity_day')], 'pk_attr': 'id', 'table_description': 'What one customer did on one day (UTC): the history the facts are derived from.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerFacts',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('spend_7d', fields.BigIntField(default=0)),
                ('spend_30d', fields.BigIntField(default=0)),
                ('spend_90d', fields.BigIntField(default=0)),
                ('spend_180d', fields.BigIntField(default=0)),
                ('spend_365d', fields.BigIntField(default=0)),
                ('visits_7d', fields.IntField(default=0)),
                ('visits_30d', fields.IntField(default=0)),
                ('visits_90d', fields.IntField(default=0)),
                ('visits_180d', fields.IntField(default=0)),
                ('visits_365d', fields.IntField(default=0)),
                ('purchases_total', fields.BigIntField(default=0)),
                ('spend_total', fields.BigIntField(default=0)),
                ('first_purchase_at', fields.DateField(null=True)),
                ('last_purchase_at', fields.DateField(null=True)),
                ('last_visit_at', fields.DateField(null=True)),
                ('last_active_at', fields.DateField(null=True)),
                ('lifecycle_stage', fields.CharField(default='new', max_length=16)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'customer_facts', 'app': 'models', 'indexes': [Index(fields=['lifecycle_stage', 'customer_id'], name='idx_customer_facts_stage')], 'pk_attr': 'id', 'table_description': 'One row per customer: what audience rules test, kept current from the daily rows.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerStoreVisit',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('store', fields.ForeignKeyField('models.Store', source_field='store_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('visits', fields.IntField(default=0)),
                ('last_visit_at', fields.DateField()),
            ],
            options={'table': 'customer_store_visits', 'app': 'models', 'unique_together': (('customer', 'store'),), 'indexes': [Index(fields=['store_id', 'customer_id'], name='idx_store_visits_store_customer')], 'pk_attr': 'id', 'table_description': 'Stores a customer has been active in, for the visited_store predicate.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Segment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('rule', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('description', fields.CharField(default='', max_length=500)),
                ('created_by', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'audience_segments', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A saved audience rule, reusable by name inside other rules.'},
            bases=['Model'],
        ),
        ops.RunPython(create_indexes, drop_indexes),
    ]
