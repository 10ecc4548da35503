"""The customer's invite code, to share."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.access import CUSTOMER
from server.routing import RouteTable, principal_of
from services.activity import referrals
from services.core import Out

routes = RouteTable()


class InviteOut(Out):
    invite_code: str = Field(description="8 characters, stable: the same code every time")
    invited_count: int = Field(description="new customers who logged in with it")
    share_page: str = Field(description="the mini-program page a shared invite opens")
    share_path: str = Field(description="share_page with the code as a query (onShareAppMessage's path)")
    scene: str = Field(description="the code as a mini-program code's scene (i=<code>), for posters")


@routes.add(
    "GET", "/api/v1/me/invite", access=CUSTOMER, tags=("referrals",), response=InviteOut,
    summary="Your invite code (made on first use), how many it brought in, and the path to share it on",
)  # fmt: skip
async def my_invite(request: web.Request) -> InviteOut:
    customer_id = principal_of(request).id
    code = await referrals.code_of(customer_id)
    return InviteOut(
        invite_code=code,
        invited_count=await referrals.invited_count(customer_id),
        share_page=referrals.SHARE_PAGE,
        share_path=f"{referrals.SHARE_PAGE}?invite_code={code}",
        scene=f"i={code}",
    )
