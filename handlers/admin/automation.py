"""Automation rules for admins: operators set them up, every admin may read them and
their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from models.automation import AutomationRule, AutomationRun
from server.access import admin
from server.routing import RouteTable, path_int
from services.automation import RuleIn, RulePatchIn
from services.automation import rules as automation_rules
from services.core import Out, Query, errors, newest_first

routes = RouteTable()

TriggerType = Literal["registered", "first_purchase", "campaign_completed", "inactive_for_days", "voucher_expiring"]

#: Like the campaign builder: operators build, everyone with an admin role reads.
WRITERS = admin("operator", "superadmin")
READERS = admin()
_ROOT = "/api/v1/admin/automation-rules"
_PATH = _ROOT + "/{id}"
_REF_ERRORS = (errors.UnknownCoupon, errors.UnknownCampaign)


class RunCountsOut(Out):
    pending: int = 0
    done: int = 0
    refused: int = 0
    failed: int = 0


class RuleOut(Out):
    id: int
    name: str
    trigger: dict[str, Any] = Field(description='{"type", ...its parameters}, as sent')
    action: dict[str, Any] = Field(description='{"type", ...its parameters}, as sent')
    enabled: bool
    created_by: int
    updated_by: int
    created_at: datetime
    updated_at: datetime
    runs: RunCountsOut | None = Field(default=None, description="runs by status (on the single rule only)")


class RulePageOut(Out):
    items: list[RuleOut]
    next_cursor: str | None


class RuleListQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)
    trigger: TriggerType | None = None
    enabled: bool | None = None


class RunOut(Out):
    id: int
    customer_id: int
    trigger: str
    context: dict[str, Any] = Field(description="what fired it (campaign_id, voucher_id, days, event_id)")
    status: str = Field(description="pending, done, refused or failed")
    outcome: dict[str, Any] = Field(description="what the action did (grant_id, claim_id, participation_id, ...)")
    refusal: str | None = Field(description="why not: sold_out, limit, budget, campaign_full, rule_disabled, ...")
    attempts: int = Field(description="executions that ended in an error")
    created_at: datetime
    finished_at: datetime | None


class RunPageOut(Out):
    items: list[RunOut]
    next_cursor: str | None


class RunListQuery(Query):
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=20, ge=1, le=100)
    status: Literal["pending", "done", "refused", "failed"] | None = None


def rule_out(rule: AutomationRule, runs: RunCountsOut | None = None) -> RuleOut:
    return RuleOut(
        id=rule.id, name=rule.name, trigger={"type": rule.trigger, **rule.trigger_params},
        action={"type": rule.action, **rule.action_params}, enabled=rule.enabled, created_by=rule.created_by,
        updated_by=rule.updated_by, created_at=rule.created_at, updated_at=rule.updated_at, runs=runs,
    )  # fmt: skip


@routes.add(
    "POST", _ROOT, access=WRITERS, tags=("automation",), body=RuleIn, response=RuleOut, status=201,
    summary="Create an automation rule: a trigger and an action", errors=_REF_ERRORS,
)  # fmt: skip
async def create_rule(request: web.Request, body: RuleIn) -> RuleOut:
    return rule_out(await automation_rules.create(body, actor_of(request)))


@routes.add(
    "GET", _ROOT, access=READERS, tags=("automation",), query=RuleListQuery, response=RulePageOut,
    summary="List automation rules, newest first (filters: trigger, enabled)",
)  # fmt: skip
async def list_rules(request: web.Request, query: RuleListQuery) -> RulePageOut:
    rows = AutomationRule.filter(deleted_at=None)
    if query.trigger is not None:
        rows = rows.filter(trigger=query.trigger)
    if query.enabled is not None:
        rows = rows.filter(enabled=query.enabled)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return RulePageOut(items=[rule_out(r) for r in page], next_cursor=nxt)


@routes.add(
    "GET", _PATH, access=READERS, tags=("automation",), response=RuleOut,
    summary="One automation rule, with its runs counted by status",
)  # fmt: skip
async def get_rule(request: web.Request) -> RuleOut:
    rule = await automation_rules.get(path_int(request, "id"))
    counts = RunCountsOut()
    for status in ("pending", "done", "refused", "failed"):
        setattr(counts, status, await AutomationRun.filter(rule_id=rule.id, status=status).count())
    return rule_out(rule, counts)


@routes.add(
    "PATCH", _PATH, access=WRITERS, tags=("automation",), body=RulePatchIn, response=RuleOut,
    summary="Change a rule (name, trigger parameters, action, enabled); its trigger type is fixed",
    errors=_REF_ERRORS,
)  # fmt: skip
async def patch_rule(request: web.Request, body: RulePatchIn) -> RuleOut:
    return rule_out(await automation_rules.update(path_int(request, "id"), body, actor_of(request)))


@routes.add(
    "DELETE", _PATH, access=WRITERS, tags=("automation",), status=204,
    summary="Delete a rule: it stops at once, its runs stay on record",
)  # fmt: skip
async def delete_rule(request: web.Request) -> web.Response:
    await automation_rules.delete(path_int(request, "id"), actor_of(request))
    return web.Response(status=204)


@routes.add(
    "GET", _PATH + "/runs", access=READERS, tags=("automation",), query=RunListQuery, response=RunPageOut,
    summary="A rule's runs, newest first: whom it acted on, what it did or why not",
)  # fmt: skip
async def list_runs(request: web.Request, query: RunListQuery) -> RunPageOut:
    rule = await automation_rules.get(path_int(request, "id"))
    rows = AutomationRun.filter(rule_id=rule.id)
    if query.status is not None:
        rows = rows.filter(status=query.status)
    page, nxt = await newest_first(rows, query.cursor, query.limit)
    return RunPageOut(items=[RunOut.model_validate(r) for r in page], next_cursor=nxt)
