from tortoise import fields, migrations
from tortoise.migrations import operations as ops


# Issue 15, accounts and access: admins get a display name; admins and staff a token
# epoch (revokes issued access tokens) and a must-change-password flag; stores an address
# and an opening state; integrations keep their previous secret through a grace period.
class Migration(migrations.Migration):
    dependencies = [('models', '0012_order_ref_per_voucher')]

    initial = False

    operations = [
        ops.AddField(model_name='Admin', name='display_name', field=fields.CharField(default='', max_length=64)),
        ops.AddField(model_name='Admin', name='token_epoch', field=fields.IntField(default=0)),
        ops.AddField(model_name='Admin', name='must_change_password', field=fields.BooleanField(default=False)),
        ops.AddField(model_name='StaffMember', name='token_epoch', field=fields.IntField(default=0)),
        ops.AddField(model_name='StaffMember', name='must_change_password', field=fields.BooleanField(default=False)),
        ops.AddField(model_name='Store', name='address', field=fields.CharField(default='', max_length=255)),
        ops.AddField(model_name='Store', name='state', field=fields.CharField(default='open', max_length=8)),
        ops.AddField(
            model_name='Integration', name='previous_secret_encrypted', field=fields.CharField(max_length=200, null=True)
        ),
        ops.AddField(
            model_name='Integration', name='previous_secret_expires_at', field=fields.DatetimeField(null=True)
        ),
    ]
