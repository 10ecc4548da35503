import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0017_hot_buckets")]

    initial = False

    operations = [
        # Campaigns approved before this migration have no snapshot: their diff says
        # "never approved" until they are approved again.
        ops.AddField(
            model_name="Campaign",
            name="approved_spec",
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
        ),
    ]
