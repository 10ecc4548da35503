"""The rule names and the global thresholds (the ALERT_* settings, see server/policies.py)."""

from __future__ import annotations

from dataclasses import dataclass

RULES = (
    "budget_runout",
    "stock_sold_out",
    "redemption_spike",
    "redemption_drop",
    "notify_failures",
    "claims_backlog",
    "webhook_paused",
)
#: The rules whose subject is a campaign: the ones a campaign may mute or tune.
CAMPAIGN_RULES = ("budget_runout", "stock_sold_out", "redemption_spike", "redemption_drop")


@dataclass(frozen=True)
class AlertPolicy:
    interval_seconds: int = 60
    #: budget_runout only when the projected run-out is at most this far away (0: any time
    #: before the campaign ends).
    budget_horizon_hours: float = 0.0
    days: int = 7
    spike_factor: float = 3.0
    drop_factor: float = 3.0
    min_baseline: float = 10.0
    notify_failures: int = 50
    claims_backlog_seconds: float = 60.0
