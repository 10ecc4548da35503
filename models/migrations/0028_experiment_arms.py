import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0027_forms_rewards")]

    initial = False

    operations = [
        # The stock and budget quotas each arm was given when the experiment split the
        # campaign's stock (null until split): reconciliation rebuilds the shares left from them.
        ops.AddField(
            model_name="Experiment",
            name="stock_split",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
        # The experiment and arm whose share a grabbed voucher was taken from (null: none).
        ops.AddField(
            model_name="Voucher",
            name="experiment_id",
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name="Voucher",
            name="experiment_arm",
            field=fields.SmallIntField(null=True),
        ),
    ]
