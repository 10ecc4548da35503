"""A campaign's alert rules: which campaign rules it mutes and which thresholds it overrides;
what it leaves unset follows the ALERT_* settings. Any admin reads them, operators and
superadmins change them (audited)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from server.access import admin
from server.keys import SETTINGS
from server.policies import alert_policy
from server.routing import RouteTable, path_int
from server.setting_spec import Setting
from server.settings import Settings
from services import alerts
from services.core import Body, Out, errors

routes = RouteTable()

CampaignRule = Literal["budget_runout", "stock_sold_out", "redemption_spike", "redemption_drop"]
#: Each overridable threshold and the setting that is its default (and whose range bounds it).
SETTING_OF = {
    "budget_horizon_hours": "alert_budget_horizon_hours",
    "days": "alert_redemption_days",
    "spike_factor": "alert_redemption_spike_factor",
    "drop_factor": "alert_redemption_drop_factor",
    "min_baseline": "alert_redemption_min_baseline",
}
assert set(SETTING_OF) == set(alerts.OVERRIDABLE)


def _bounded(name: str) -> Any:
    """An optional body field with the range and the meaning of its setting (one declaration)."""
    spec: Setting = {f.name: f for f in dataclasses.fields(Settings)}[SETTING_OF[name]].metadata["setting"]
    return Field(default=None, ge=spec.lo, le=spec.hi, description=f"null: `{spec.env}` ({spec.help})")


class AlertRulesIn(Body):
    muted: list[CampaignRule] = Field(
        default_factory=list, max_length=4, description="rules never raised for this campaign"
    )
    budget_horizon_hours: float | None = _bounded("budget_horizon_hours")
    days: int | None = _bounded("days")
    spike_factor: float | None = _bounded("spike_factor")
    drop_factor: float | None = _bounded("drop_factor")
    min_baseline: float | None = _bounded("min_baseline")


class AlertThresholdsOut(Out):
    budget_horizon_hours: float | None
    days: int | None
    spike_factor: float | None
    drop_factor: float | None
    min_baseline: float | None


class AlertRulesOut(Out):
    campaign_id: int
    muted: list[str]
    overrides: AlertThresholdsOut = Field(description="the campaign's own thresholds (null: the setting's)")
    effective: AlertThresholdsOut = Field(description="the thresholds the alert pass uses for this campaign")
    updated_at: datetime | None


def _out(rules: alerts.CampaignAlertRules) -> AlertRulesOut:
    effective = {name: getattr(rules.effective, name) for name in alerts.OVERRIDABLE}
    return AlertRulesOut(
        campaign_id=rules.campaign_id, muted=list(rules.muted),
        overrides=AlertThresholdsOut.model_validate(rules.overrides),
        effective=AlertThresholdsOut.model_validate(effective), updated_at=rules.updated_at,
    )  # fmt: skip


@routes.add(
    "GET", "/api/v1/admin/campaigns/{id}/alert-rules", access=admin(), tags=("alerts",), response=AlertRulesOut,
    summary="A campaign's alert rules: muted rules, its own thresholds and the ones in effect",
    errors=(errors.NotFound,),
)  # fmt: skip
async def get_alert_rules(request: web.Request) -> AlertRulesOut:
    policy = alert_policy(request.app[SETTINGS])
    return _out(await alerts.rules_of(path_int(request, "id"), policy))


@routes.add(
    "PUT", "/api/v1/admin/campaigns/{id}/alert-rules", access=admin("operator", "superadmin"), tags=("alerts",),
    body=AlertRulesIn, response=AlertRulesOut, errors=(errors.NotFound,),
    summary="Replace a campaign's alert rules (a threshold left out or null follows its setting); audited as "
    "campaign.alert_rules; the next alert pass applies them (a muted rule's open episode is cleared)",
)  # fmt: skip
async def put_alert_rules(request: web.Request, body: AlertRulesIn) -> AlertRulesOut:
    rules = await alerts.set_rules(
        path_int(request, "id"), muted=list(body.muted),
        overrides={name: getattr(body, name) for name in alerts.OVERRIDABLE},
        policy=alert_policy(request.app[SETTINGS]), actor=actor_of(request),
    )  # fmt: skip
    return _out(rules)
