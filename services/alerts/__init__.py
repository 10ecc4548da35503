"""Alerts: rules evaluated by an elected periodic worker over campaigns, stock, redemptions,
notifications and the claims backlog; each episode raised once (an ``alert.raised`` webhook
event) and cleared when back to normal. Episodes are written by ``services.outbound``."""

from services.alerts.listing import list_alerts
from services.alerts.rules import RULES, AlertPolicy, AlertReport, evaluate

__all__ = ["RULES", "AlertPolicy", "AlertReport", "evaluate", "list_alerts"]
