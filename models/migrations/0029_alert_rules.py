import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0028_experiment_arms")]

    initial = False

    operations = [
        # Per-campaign alert rules (mutes and threshold overrides), admins' WeChat for alerts.
        ops.CreateModel(
            name="CampaignAlertRule",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "campaign",
                    fields.OneToOneField(
                        "models.Campaign",
                        source_field="campaign_id",
                        db_constraint=True,
                        to_field="id",
                        related_name=False,
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "muted",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("budget_horizon_hours", fields.FloatField(null=True)),
                ("days", fields.IntField(null=True)),
                ("spike_factor", fields.FloatField(null=True)),
                ("drop_factor", fields.FloatField(null=True)),
                ("min_baseline", fields.FloatField(null=True)),
                ("updated_by", fields.BigIntField(null=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "campaign_alert_rules",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A campaign's alert rules where they differ from the settings (ALERT_*): the",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Admin",
            name="alert_wechat",
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name="Admin",
            name="wechat_openid",
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
