"""The customer's subscribe-message allowances (which notifications they accepted)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import Field, StringConstraints

from server.access import CUSTOMER
from server.keys import SETTINGS
from server.routing import RouteTable, principal_of
from services.core import Body, Out, errors
from services.notify import Allowance, reported_language
from services.notify import subscriptions as notify_subscriptions

routes = RouteTable()

TemplateId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SubscriptionsIn(Body):
    template_ids: list[TemplateId] = Field(
        min_length=1, max_length=notify_subscriptions.MAX_REPORTED,
        description="templates the customer accepted in wx.requestSubscribeMessage (each counts one message)",
    )  # fmt: skip
    language: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$",
        description="the customer's language (`zh-CN`, or wx.getSystemInfo's `zh_CN`, read as `zh-CN`): these "
        "templates' messages read the campaign's texts in it where the campaign has it; default: the "
        "Accept-Language header",
    )  # fmt: skip


class AllowanceOut(Out):
    template_id: str
    kinds: list[str] = Field(description="the notifications sent with this template")
    remaining: int = Field(description="messages of this template the customer still accepts")
    updated_at: datetime | None

    @classmethod
    def of(cls, a: Allowance) -> AllowanceOut:
        return cls(template_id=a.template_id, kinds=list(a.kinds), remaining=a.remaining, updated_at=a.updated_at)


class SubscriptionsOut(Out):
    items: list[AllowanceOut] = Field(description="every configured template, with the caller's count")


def _known(request: web.Request) -> dict[str, list[str]]:
    return request.app[SETTINGS].notify.template_ids()


@routes.add(
    "POST", "/api/v1/me/subscriptions", access=CUSTOMER, tags=("me",), body=SubscriptionsIn,
    response=SubscriptionsOut,
    summary="Report the subscribe-message templates the caller accepted: each allows one message of that template",
    errors=(errors.ValidationFailed,),
)  # fmt: skip
async def report_subscriptions(request: web.Request, body: SubscriptionsIn) -> SubscriptionsOut:
    if body.language is not None:
        language: str | None = body.language.replace("_", "-")
    else:
        language = reported_language(request.headers.get("Accept-Language"))
    rows = await notify_subscriptions.accept(principal_of(request).id, body.template_ids, _known(request), language)
    return SubscriptionsOut(items=[AllowanceOut.of(a) for a in rows])


@routes.add(
    "GET", "/api/v1/me/subscriptions", access=CUSTOMER, tags=("me",), response=SubscriptionsOut,
    summary="How many messages of each configured template the caller still accepts",
)  # fmt: skip
async def list_subscriptions(request: web.Request) -> SubscriptionsOut:
    rows = await notify_subscriptions.allowances(principal_of(request).id, _known(request))
    return SubscriptionsOut(items=[AllowanceOut.of(a) for a in rows])
