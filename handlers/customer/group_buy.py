"""Group buy (拼团): open a group, join one, read one, list the groups one can join."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from handlers.common.request_meta import client_address
from server.access import CUSTOMER
from server.keys import GROUP_BUYS, POLICIES, REDIS, WECHAT
from server.routing import RouteTable, path_int, principal_of
from services.core import Body, Id, Out, errors
from services.forms import GroupView, screen

routes = RouteTable()

#: The mini program's page for a group (the share card opens it).
SHARE_PAGE = "pages/group/detail"


class OpenGroupIn(Body):
    campaign_id: Id


class GroupMemberOut(Out):
    position: int = Field(description="1 is the opener")
    nickname: str | None = Field(description="null for a virtual member or a customer without one")
    avatar_url: str | None = Field(description="always null for now: customers' avatars are not stored")
    virtual: bool = Field(description="a virtual member added when the group expired (virtual_fill)")
    me: bool


class GroupOut(Out):
    id: int
    campaign_id: int
    size: int
    status: Literal["open", "filled", "failed"]
    expires_at: datetime
    seconds_left: int = Field(description="0 once the group is closed or past its expiry")
    members: list[GroupMemberOut]
    real_members: int
    virtual_members: int
    share_path: str = Field(description="the mini program page to share (opens this group)")
    share_scene: str = Field(description="the scene for a mini program code (wxacode.getUnlimited) of this group")


class JoinedGroupOut(Out):
    position: int
    filled: bool = Field(description="this join filled the group: every member's reward follows")
    group: GroupOut


class JoinableGroupsOut(Out):
    items: list[GroupOut]


def group_out(view: GroupView, customer_id: int, now: datetime) -> GroupOut:
    return GroupOut(
        id=view.id, campaign_id=view.campaign_id, size=view.size,
        status=view.status,  # type: ignore[arg-type]  # one of models.group_buy.GROUP_STATUSES
        expires_at=view.expires_at, seconds_left=view.seconds_left(now),
        members=[
            GroupMemberOut(position=m.position, nickname=m.nickname, avatar_url=None, virtual=m.virtual,
                           me=m.customer_id == customer_id)
            for m in view.members
        ],
        real_members=view.real_members, virtual_members=view.virtual_members,
        share_path=f"{SHARE_PAGE}?id={view.id}", share_scene=f"g={view.id}",
    )  # fmt: skip


_JOIN_CHECKS = (errors.NotFound, errors.CampaignNotActive, errors.NotEligible, errors.ExclusiveConflict,
                errors.BudgetExhausted)  # fmt: skip


@routes.add(
    "POST", "/api/v1/groups", access=CUSTOMER, tags=("forms",), body=OpenGroupIn, response=GroupOut, status=201,
    summary="Open a group in a group_buy campaign: its size, expiry and share path; others join it by id",
    errors=(*_JOIN_CHECKS, errors.GroupLimitReached),
)  # fmt: skip
async def open_group(request: web.Request, body: OpenGroupIn) -> GroupOut:
    customer_id = principal_of(request).id
    now = datetime.now(UTC)
    view = await request.app[GROUP_BUYS].open(campaign_id=body.campaign_id, customer_id=customer_id, now=now)
    return group_out(view, customer_id, now)


@routes.add(
    "POST", "/api/v1/groups/{id}/join", access=CUSTOMER, tags=("forms",), response=JoinedGroupOut,
    summary="Join a group, atomically: never above its size, never twice, within its time and the campaign's "
    "limit of open groups per customer; WeChat's risk rank is checked first",
    errors=(*_JOIN_CHECKS, errors.GroupFull, errors.AlreadyInGroup, errors.GroupExpired, errors.GroupLimitReached,
            errors.RiskRefused),
)  # fmt: skip
async def join_group(request: web.Request) -> JoinedGroupOut:
    customer_id = principal_of(request).id
    app = request.app

    async def risk() -> None:
        await screen(
            redis=app[REDIS], wechat=app[WECHAT], policy=app[POLICIES].risk, customer_id=customer_id,
            client_ip=client_address(request),
        )  # fmt: skip

    groups = app[GROUP_BUYS]
    group_id = path_int(request, "id")
    position, filled = await groups.join(group_id=group_id, customer_id=customer_id, now=datetime.now(UTC), screen=risk)
    view = await groups.view(group_id)
    return JoinedGroupOut(position=position, filled=filled, group=group_out(view, customer_id, datetime.now(UTC)))


@routes.add(
    "GET", "/api/v1/groups/{id}", access=CUSTOMER, tags=("forms",), response=GroupOut,
    summary="A group: its members' nicknames (virtual members marked), status and time left",
    errors=(errors.NotFound,),
)  # fmt: skip
async def get_group(request: web.Request) -> GroupOut:
    view = await request.app[GROUP_BUYS].view(path_int(request, "id"))
    return group_out(view, principal_of(request).id, datetime.now(UTC))


@routes.add(
    "GET", "/api/v1/campaigns/{id}/groups", access=CUSTOMER, tags=("forms",), response=JoinableGroupsOut,
    summary="Open groups of a group_buy campaign the caller can join (not theirs, not full), soonest to expire first",
    errors=(errors.NotFound,),
)  # fmt: skip
async def joinable_groups(request: web.Request) -> JoinableGroupsOut:
    customer_id = principal_of(request).id
    now = datetime.now(UTC)
    views = await request.app[GROUP_BUYS].joinable(
        campaign_id=path_int(request, "id"), customer_id=customer_id, now=now
    )
    return JoinableGroupsOut(items=[group_out(v, customer_id, now) for v in views])
