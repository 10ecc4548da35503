"""The notifications outbox as operators see it: what was sent, skipped, failed, and the
``unknown`` ones (a crash while sending: WeChat may or may not have delivered them, and
they are never resent) that someone may want to look at."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from handlers.common.schemas import PageQuery
from server.access import ANY_ADMIN
from server.routing import RouteTable
from services.core import Id, Out
from services.notify import outbox as notify_outbox

routes = RouteTable()

Status = Literal["pending", "sending", "sent", "failed", "skipped", "unknown"]
Kind = Literal[
    "new_campaign", "campaign_ending", "reward", "voucher_expiring", "group_result", "bargain_result", "alert"
]


class OutboxQuery(PageQuery):
    status: Status | None = None
    kind: Kind | None = None
    customer_id: Id | None = None


class NotificationOut(Out):
    id: int
    key: str
    kind: str
    customer_id: int
    status: str
    template_id: str | None
    payload: dict[str, Any]
    attempts: int
    errcode: int | None = Field(description="WeChat's answer to the last send (0: delivered)")
    errmsg: str | None
    msgid: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None


class OutboxPageOut(Out):
    items: list[NotificationOut]
    next_cursor: str | None
    counts: dict[str, int] = Field(description="messages per status in the whole outbox")


@routes.add(
    "GET", "/api/v1/admin/notifications", access=ANY_ADMIN, tags=("admin",), query=OutboxQuery,
    response=OutboxPageOut, summary="The notifications outbox, newest first (status, kind, customer_id filters)",
)  # fmt: skip
async def list_notifications(request: web.Request, query: OutboxQuery) -> OutboxPageOut:
    page, nxt, counts = await notify_outbox.listing(
        query.status, query.kind, query.customer_id, query.cursor, query.limit
    )
    items = [NotificationOut.model_validate(row) for row in page]
    return OutboxPageOut(items=items, next_cursor=nxt, counts=counts)
