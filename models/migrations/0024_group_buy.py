from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

# Group buy (issue 17): groups and their members, written by the group worker from the
# Redis decisions (a group's id comes from Redis, not the database), and the campaign's
# group_buy rules.

class Migration(migrations.Migration):
    dependencies = [("models", "0023_attribution")]

    initial = False

    operations = [
        ops.CreateModel(
            name='GroupBuy',
            fields=[
                ('id', fields.BigIntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.BigIntField()),
                ('leader_id', fields.BigIntField()),
                ('size', fields.IntField()),
                ('status', fields.CharField(default='open', max_length=16)),
                ('virtual_members', fields.IntField(default=0)),
                ('opened_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'group_buys', 'app': 'models', 'indexes': [Index(fields=['status', 'expires_at'], name='idx_group_buys_status_expiry'), Index(fields=['campaign_id', 'status'], name='idx_group_buys_campaign')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GroupMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group_id', fields.BigIntField()),
                ('position', fields.IntField()),
                ('customer_id', fields.BigIntField(null=True)),
                ('virtual', fields.BooleanField(default=False)),
                ('joined_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('rewarded', fields.BooleanField(default=False)),
            ],
            options={'table': 'group_members', 'app': 'models', 'unique_together': (('group_id', 'position'), ('group_id', 'customer_id')), 'indexes': [Index(fields=['customer_id'], name='idx_group_members_customer')], 'pk_attr': 'id', 'table_description': 'One place in a group: a customer, or a virtual member (no customer).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Campaign',
            name='group_spec',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
