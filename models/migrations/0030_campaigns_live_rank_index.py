from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0029_alert_rules")]

    initial = False

    operations = [
        # The analytics overview's live-campaign condition answered from the index alone
        # (no read of the wide campaign rows): see models/campaigns.py.
        ops.AddIndex(
            model_name="Campaign",
            index=Index(
                fields=["status", "ends_at", "starts_at", "ended_at", "budget_spent", "type"],
                name="idx_campaigns_live_rank",
            ),
        ),
    ]
