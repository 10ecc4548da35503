from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0015_data_rights")]

    initial = False

    operations = [
        # The language the customer's mini program reported with their last acceptance of
        # the template: messages read the campaign's texts in it. Existing rows: none known
        # (the campaign's default language).
        ops.AddField(
            model_name="NotifySubscription",
            name="language",
            field=fields.CharField(max_length=16, null=True),
        ),
    ]
