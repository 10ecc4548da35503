"""Webhooks out (superadmins): endpoints, their delivery log, redelivery; and the alerts list."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.actors import actor_of
from handlers.common.schemas import PageQuery
from models.webhooks import Webhook, WebhookDelivery, WebhookEvent
from server.access import ANY_ADMIN, admin
from server.keys import SETTINGS
from server.routing import RouteTable, path_int
from services import alerts
from services.core import Body, Out, errors, newest_first
from services.webhooks import endpoints

routes = RouteTable()

SUPERADMIN = admin("superadmin")

EventType = Literal[
    "voucher.issued",
    "voucher.redeemed",
    "voucher.reversed",
    "campaign.state_changed",
    "participation.completed",
    "points.changed",
    "alert.raised",
]


class WebhookIn(Body):
    url: str = Field(min_length=1, max_length=500, description="http(s); private addresses refused in production")
    events: list[EventType] = Field(min_length=1, max_length=7)
    active: bool = True


class WebhookPatchIn(Body):
    url: str | None = Field(default=None, min_length=1, max_length=500)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=7)
    active: bool | None = Field(default=None, description="true also resumes a paused endpoint")


class WebhookOut(Out):
    id: int
    url: str
    events: list[str]
    active: bool
    paused_at: datetime | None = Field(description="set when too many deliveries failed in a row: nothing is sent")
    consecutive_failures: int
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="the HMAC-SHA256 signing key: shown this once, never again")


class WebhookPageOut(Out):
    items: list[WebhookOut]
    next_cursor: str | None


class WebhookDeliveryOut(Out):
    id: int
    event_id: str = Field(description="the event's id, the same in every retry and redelivery (X-Webhook-Id)")
    event_type: str
    entity: str
    status: str = Field(description="pending, delivering or delivered")
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    response_status: int | None
    response_body: str | None = Field(description="the first 500 characters of the endpoint's last answer")
    error: str | None
    created_at: datetime


class WebhookDeliveryPageOut(Out):
    items: list[WebhookDeliveryOut]
    next_cursor: str | None


class AlertsQuery(PageQuery):
    status: Literal["raised", "cleared"] | None = None
    rule: str | None = Field(default=None, max_length=40)
    campaign_id: int | None = Field(default=None, ge=1)


class AlertOut(Out):
    id: int
    rule: str
    key: str
    campaign_id: int | None
    status: str = Field(description="raised (the condition holds) or cleared (back to normal)")
    message: str
    details: dict[str, Any]
    raised_at: datetime
    cleared_at: datetime | None


class AlertPageOut(Out):
    items: list[AlertOut]
    next_cursor: str | None


def _out(row: Webhook) -> WebhookOut:
    return WebhookOut(
        id=row.id, url=row.url, events=endpoints.events_of(row), active=row.active, paused_at=row.paused_at,
        consecutive_failures=row.consecutive_failures, created_at=row.created_at,
    )  # fmt: skip


async def _deliveries_out(rows: list[WebhookDelivery]) -> list[WebhookDeliveryOut]:
    types = dict(await WebhookEvent.filter(id__in={d.event_id for d in rows}).values_list("id", "type"))
    return [_delivery_out(d, str(types.get(d.event_id, ""))) for d in rows]


def _delivery_out(d: WebhookDelivery, event_type: str) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=d.id, event_id=str(d.event_id), event_type=event_type, entity=d.entity,
        status=d.status, attempts=d.attempts, next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at,
        response_status=d.response_status, response_body=d.response_body, error=d.error, created_at=d.created_at,
    )  # fmt: skip


def _allow_private(request: web.Request) -> bool:
    return request.app[SETTINGS].app_env != "production"


@routes.add(
    "POST", "/api/v1/admin/webhooks", access=SUPERADMIN, tags=("webhooks",), body=WebhookIn,
    response=WebhookCreatedOut, status=201, errors=(errors.WebhookUrlRefused,),
    summary="Create a webhook endpoint: its URL, event types and signing secret (shown once); audited",
)  # fmt: skip
async def create_webhook(request: web.Request, body: WebhookIn) -> WebhookCreatedOut:
    row, secret = await endpoints.create(
        url=body.url, events=body.events, active=body.active, secret_key=request.app[SETTINGS].secret_key,
        allow_private=_allow_private(request), actor=actor_of(request),
    )  # fmt: skip
    return WebhookCreatedOut(**_out(row).model_dump(), secret=secret)


@routes.add(
    "GET", "/api/v1/admin/webhooks", access=SUPERADMIN, tags=("webhooks",), query=PageQuery,
    response=WebhookPageOut, summary="List webhook endpoints (never their secrets)",
)  # fmt: skip
async def list_webhooks(request: web.Request, query: PageQuery) -> WebhookPageOut:
    page, nxt = await newest_first(Webhook.all(), query.cursor, query.limit)
    return WebhookPageOut(items=[_out(w) for w in page], next_cursor=nxt)


@routes.add(
    "GET", "/api/v1/admin/webhooks/{id}", access=SUPERADMIN, tags=("webhooks",), response=WebhookOut,
    errors=(errors.NotFound,), summary="One webhook endpoint",
)  # fmt: skip
async def get_webhook(request: web.Request) -> WebhookOut:
    return _out(await endpoints.get(path_int(request, "id")))


@routes.add(
    "PATCH", "/api/v1/admin/webhooks/{id}", access=SUPERADMIN, tags=("webhooks",), body=WebhookPatchIn,
    response=WebhookOut, errors=(errors.NotFound, errors.WebhookUrlRefused),
    summary="Change a webhook endpoint's URL, events or active flag (active: true resumes a paused one); audited",
)  # fmt: skip
async def patch_webhook(request: web.Request, body: WebhookPatchIn) -> WebhookOut:
    row = await endpoints.update(
        path_int(request, "id"), url=body.url, events=body.events, active=body.active,
        allow_private=_allow_private(request), actor=actor_of(request),
    )  # fmt: skip
    return _out(row)


@routes.add(
    "DELETE", "/api/v1/admin/webhooks/{id}", access=SUPERADMIN, tags=("webhooks",), status=204,
    errors=(errors.NotFound,), summary="Delete a webhook endpoint and its delivery log; audited",
)  # fmt: skip
async def delete_webhook(request: web.Request) -> web.Response:
    await endpoints.delete(path_int(request, "id"), actor_of(request))
    return web.Response(status=204)


@routes.add(
    "GET", "/api/v1/admin/webhooks/{id}/deliveries", access=SUPERADMIN, tags=("webhooks",), query=PageQuery,
    response=WebhookDeliveryPageOut, errors=(errors.NotFound,),
    summary="An endpoint's delivery log, newest first: attempts, the last answer or error",
)  # fmt: skip
async def list_deliveries(request: web.Request, query: PageQuery) -> WebhookDeliveryPageOut:
    row = await endpoints.get(path_int(request, "id"))
    page, nxt = await newest_first(WebhookDelivery.filter(webhook_id=row.id), query.cursor, query.limit)
    return WebhookDeliveryPageOut(items=await _deliveries_out(page), next_cursor=nxt)


@routes.add(
    "POST", "/api/v1/admin/webhooks/{id}/deliveries/{delivery_id}/redeliver", access=SUPERADMIN,
    tags=("webhooks",), response=WebhookDeliveryOut, status=202, errors=(errors.NotFound,),
    summary="Send a delivery's event again (same event id): a waiting one at once, a delivered one as a new"
    " delivery; audited",
)  # fmt: skip
async def redeliver(request: web.Request) -> WebhookDeliveryOut:
    delivery = await endpoints.redeliver(path_int(request, "id"), path_int(request, "delivery_id"), actor_of(request))
    return (await _deliveries_out([delivery]))[0]


@routes.add(
    "GET", "/api/v1/admin/alerts", access=ANY_ADMIN, tags=("alerts",), query=AlertsQuery, response=AlertPageOut,
    summary="Alerts, newest first: each episode of a rule for a campaign, coupon, endpoint or everything",
)  # fmt: skip
async def list_alerts(request: web.Request, query: AlertsQuery) -> AlertPageOut:
    page, nxt = await alerts.list_alerts(
        status=query.status, rule=query.rule, campaign_id=query.campaign_id, cursor=query.cursor, limit=query.limit
    )
    return AlertPageOut(items=[AlertOut.model_validate(a) for a in page], next_cursor=nxt)
