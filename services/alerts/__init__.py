"""Alerts: rules evaluated by an elected periodic worker over campaigns, stock, redemptions,
notifications and the claims backlog; each episode raised once (an ``alert.raised`` webhook
event, and a WeChat subscribe message to each admin who opted in) and cleared when back to
normal. A campaign may mute its rules or override their thresholds (``campaign_rules``).
Episodes are written by ``services.outbound``."""

from services.alerts.campaign_rules import OVERRIDABLE, CampaignAlertRules, rules_of, set_rules
from services.alerts.listing import list_alerts
from services.alerts.policy import CAMPAIGN_RULES, RULES, AlertPolicy
from services.alerts.rules import AlertReport, evaluate

__all__ = [
    "CAMPAIGN_RULES",
    "OVERRIDABLE",
    "RULES",
    "AlertPolicy",
    "AlertReport",
    "CampaignAlertRules",
    "evaluate",
    "list_alerts",
    "rules_of",
    "set_rules",
]
