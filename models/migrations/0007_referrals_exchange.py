from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_voucher_expiry_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InviteCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('code', fields.CharField(unique=True, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'invite_codes', 'app': 'models', 'pk_attr': 'id', 'table_description': "A customer's invite code, made the first time it is asked for (one per customer)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Referral',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('inviter', fields.ForeignKeyField('models.Customer', source_field='inviter_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('invitee', fields.OneToOneField('models.Customer', source_field='invitee_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('code', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'referrals', 'app': 'models', 'indexes': [Index(fields=['inviter_id', 'id'], name='idx_referrals_inviter')], 'pk_attr': 'id', 'table_description': "A new customer who logged in with an inviter's code. Unique per invitee: an"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CouponTemplate',
            name='points_price',
            field=fields.IntField(null=True),
        ),
        ops.AlterModelOptions(
            name='RewardGrant',
            options={'table': 'reward_grants', 'app': 'models', 'unique_together': (('participation', 'template_id'),), 'indexes': [Index(fields=['status', 'id'], name='idx_reward_grants_status')], 'pk_attr': 'id', 'table_description': 'A coupon owed to a customer, written in the transaction that decided it and then'},
        ),
        ops.AlterField(
            model_name='RewardGrant',
            name='participation',
            field=fields.ForeignKeyField('models.Participation', source_field='participation_id', null=True, db_constraint=True, to_field='id', related_name='grants', on_delete=OnDelete.RESTRICT),
        ),
        # Existing grants are all participation rewards: their ref is derived from the
        # (participation, coupon) pair they were unique on, then the column becomes required.
        ops.AddField(
            model_name='RewardGrant',
            name='ref',
            field=fields.CharField(null=True, unique=True, max_length=80),
        ),
        ops.RunSQL(
            "UPDATE reward_grants SET ref = 'reward:' || CAST(participation_id AS VARCHAR(20)) || ':' || CAST(template_id AS VARCHAR(20)) WHERE ref IS NULL",
            reverse_sql="SELECT 1",
        ),
        ops.AlterField(
            model_name='RewardGrant',
            name='ref',
            field=fields.CharField(unique=True, max_length=80),
        ),
        # SQLite alters a column by rebuilding the table, and tortoise's rebuild leaves out the
        # table's unique_together and indexes: put them back (PostgreSQL still has them).
        ops.RunSQL(
            'CREATE UNIQUE INDEX IF NOT EXISTS "uid_reward_gran_partici_47136a" ON "reward_grants" ("participation_id", "template_id")',
            reverse_sql="SELECT 1",
        ),
        ops.RunSQL(
            'CREATE INDEX IF NOT EXISTS "idx_reward_grants_status" ON "reward_grants" ("status", "id")',
            reverse_sql="SELECT 1",
        ),
    ]
