"""Automation rules for admins: create, read, change, enable/disable, delete. Every
change is audited in its own transaction.

A rule's references (the coupon to issue, the campaign to enrol in, the campaign whose
completion fires it) must exist when the rule is saved (``unknown_coupon``,
``unknown_campaign``); whether they can still be used is decided when the rule runs, and
a refusal then is recorded on the run. A deleted rule is kept, disabled, with
``deleted_at`` (its runs are history) and is ``not_found`` to the routes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.transactions import in_transaction

from models.automation import AutomationRule
from models.campaigns import Campaign, CouponTemplate
from services.automation.spec import CampaignCompleted, Enrol, IssueCoupon, Notify, RuleIn, RulePatchIn, params_of
from services.core import audit, errors


def snapshot(rule: AutomationRule) -> dict[str, Any]:
    return {
        "name": rule.name, "trigger": rule.trigger, "trigger_params": rule.trigger_params, "action": rule.action,
        "action_params": rule.action_params, "enabled": rule.enabled,
    }  # fmt: skip


async def _check_references(trigger: Any, action: Any) -> None:
    if isinstance(action, IssueCoupon) and not await CouponTemplate.filter(id=action.coupon_id).exists():
        raise errors.UnknownCoupon(f"no coupon {action.coupon_id}", details={"field": "action.coupon_id"})
    if isinstance(action, Enrol | Notify) and not await Campaign.filter(id=action.campaign_id).exists():
        raise errors.UnknownCampaign(f"no campaign {action.campaign_id}", details={"field": "action.campaign_id"})
    if isinstance(trigger, CampaignCompleted) and trigger.campaign_id is not None:
        if not await Campaign.filter(id=trigger.campaign_id).exists():
            raise errors.UnknownCampaign(f"no campaign {trigger.campaign_id}", details={"field": "trigger.campaign_id"})


async def create(spec: RuleIn, actor: audit.Actor) -> AutomationRule:
    await _check_references(spec.trigger, spec.action)
    async with in_transaction():
        rule = await AutomationRule.create(
            name=spec.name, trigger=spec.trigger.type, trigger_params=params_of(spec.trigger),
            action=spec.action.type, action_params=params_of(spec.action), enabled=spec.enabled,
            created_by=actor.id or 0, updated_by=actor.id or 0,
        )  # fmt: skip
        await audit.record(actor, "automation_rule.create", "automation_rule", rule.id, None, snapshot(rule))
    return rule


async def get(rule_id: int) -> AutomationRule:
    rule = await AutomationRule.get_or_none(id=rule_id, deleted_at=None)
    if rule is None:
        raise errors.NotFound(f"no automation rule {rule_id}")
    return rule


async def update(rule_id: int, patch: RulePatchIn, actor: audit.Actor) -> AutomationRule:
    """Apply the fields the patch names. The trigger's type cannot change: a rule's runs
    (once per customer) would then mean something else."""
    rule = await get(rule_id)
    if patch.trigger is not None and patch.trigger.type != rule.trigger:
        raise errors.ValidationFailed(
            "trigger.type: a rule's trigger cannot change; create another rule",
            details={"errors": [{"field": "trigger.type", "message": "cannot change", "type": "immutable"}]},
        )
    await _check_references(patch.trigger, patch.action)
    async with in_transaction():
        rule = await AutomationRule.select_for_update().get(id=rule.id)
        before = snapshot(rule)
        if patch.name is not None:
            rule.name = patch.name
        if patch.trigger is not None:
            rule.trigger_params = params_of(patch.trigger)
        if patch.action is not None:
            rule.action, rule.action_params = patch.action.type, params_of(patch.action)
        if patch.enabled is not None:
            rule.enabled = patch.enabled
        rule.updated_by = actor.id or 0
        await rule.save()
        await audit.record(actor, "automation_rule.update", "automation_rule", rule.id, before, snapshot(rule))
    return rule


async def delete(rule_id: int, actor: audit.Actor) -> None:
    rule = await get(rule_id)
    async with in_transaction():
        before = snapshot(rule)
        done = await AutomationRule.filter(id=rule.id, deleted_at=None).update(
            enabled=False, deleted_at=datetime.now(UTC), updated_by=actor.id or 0
        )
        if not done:
            raise errors.NotFound(f"no automation rule {rule_id}")
        await audit.record(actor, "automation_rule.delete", "automation_rule", rule.id, before, None)
