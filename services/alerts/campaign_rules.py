"""Per-campaign alert rules: a campaign may mute any of the campaign rules and override the
thresholds they use; what it leaves unset follows the global policy (the ALERT_* settings),
read at each pass, so a change of a setting reaches every campaign not overriding it.

Only the campaign rules can be tuned here (``budget_runout``, ``stock_sold_out``,
``redemption_spike``, ``redemption_drop``): ``notify_failures`` and ``claims_backlog`` watch
the whole service, not a campaign (a notification or a claim backlog is not counted per
campaign), so their thresholds stay the settings'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from models.campaigns import Campaign
from models.webhooks import CampaignAlertRule
from services.alerts.policy import CAMPAIGN_RULES, AlertPolicy
from services.core import Actor, audit, errors

#: The AlertPolicy thresholds a campaign may override (each a nullable column of the row).
OVERRIDABLE = ("budget_horizon_hours", "days", "spike_factor", "drop_factor", "min_baseline")


@dataclass(frozen=True)
class CampaignAlertRules:
    """A campaign's rules: what it mutes, what it overrides (None: the setting), and the
    policy its pass uses (the overrides over ``policy``)."""

    campaign_id: int
    muted: tuple[str, ...]
    overrides: dict[str, float | int | None]
    effective: AlertPolicy
    updated_at: datetime | None


def _overrides(row: CampaignAlertRule | None) -> dict[str, float | int | None]:
    return {name: (getattr(row, name) if row is not None else None) for name in OVERRIDABLE}


def applied(policy: AlertPolicy, row: CampaignAlertRule | None) -> AlertPolicy:
    """``policy`` with the row's overrides in place (the row may be None: no overrides)."""
    given: dict[str, Any] = {name: value for name, value in _overrides(row).items() if value is not None}
    return dataclasses.replace(policy, **given) if given else policy


def muted_of(row: CampaignAlertRule | None) -> frozenset[str]:
    return frozenset(row.muted or ()) if row is not None else frozenset()


def _shape(campaign_id: int, row: CampaignAlertRule | None, policy: AlertPolicy) -> CampaignAlertRules:
    return CampaignAlertRules(
        campaign_id=campaign_id, muted=tuple(r for r in CAMPAIGN_RULES if r in muted_of(row)),
        overrides=_overrides(row), effective=applied(policy, row), updated_at=row.updated_at if row else None,
    )  # fmt: skip


async def _campaign_id(campaign_id: int) -> int:
    if not await Campaign.filter(id=campaign_id).exists():
        raise errors.NotFound(f"no campaign {campaign_id}")
    return campaign_id


async def rules_of(campaign_id: int, policy: AlertPolicy) -> CampaignAlertRules:
    """The campaign's rules over ``policy`` (the settings'). NotFound when no such campaign."""
    await _campaign_id(campaign_id)
    return _shape(campaign_id, await CampaignAlertRule.get_or_none(campaign_id=campaign_id), policy)


def _snapshot(row: CampaignAlertRule | None) -> dict[str, Any]:
    return {"muted": sorted(muted_of(row)), **_overrides(row)}


async def set_rules(
    campaign_id: int, *, muted: list[str], overrides: Mapping[str, float | int | None], policy: AlertPolicy,
    actor: Actor,
) -> CampaignAlertRules:  # fmt: skip
    """Replace the campaign's rules (every override not given goes back to the setting),
    audited as ``campaign.alert_rules``. Preconditions: ``muted`` names campaign rules and
    ``overrides`` only OVERRIDABLE names, within the settings' ranges (the handler checks).
    NotFound when no such campaign. The next pass applies them (a newly muted rule's open
    episode is cleared then)."""
    unknown = sorted(set(muted) - set(CAMPAIGN_RULES)) + sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise errors.ValidationFailed(f"not a campaign alert rule or threshold: {unknown[0]}")
    await _campaign_id(campaign_id)
    values: dict[str, Any] = {name: overrides.get(name) for name in OVERRIDABLE}
    kept = [r for r in CAMPAIGN_RULES if r in set(muted)]
    async with in_transaction():
        row = await CampaignAlertRule.filter(campaign_id=campaign_id).select_for_update().first()
        before = _snapshot(row)
        if row is None:
            row = await CampaignAlertRule.create(campaign_id=campaign_id, muted=kept, updated_by=actor.id, **values)
        else:
            row.update_from_dict({"muted": kept, "updated_by": actor.id, **values})
            await row.save()
        await audit.record(actor, "campaign.alert_rules", "campaign", campaign_id, before, _snapshot(row))
    return _shape(campaign_id, row, policy)


async def rules_by_campaign(campaign_ids: list[int]) -> dict[int, CampaignAlertRule]:
    """The rows of these campaigns (campaigns without one are left out)."""
    if not campaign_ids:
        return {}
    return {row.campaign_id: row for row in await CampaignAlertRule.filter(campaign_id__in=campaign_ids)}
