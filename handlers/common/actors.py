"""Who is acting, and under which policy, as the services want it."""

from __future__ import annotations

from aiohttp import web

from server.keys import POLICIES, PRINCIPAL, REQUEST_ID
from services.campaigns import Policy
from services.core import Actor


def actor_of(request: web.Request) -> Actor:
    return Actor(principal=request.get(PRINCIPAL), request_id=request.get(REQUEST_ID))


def campaign_policy(request: web.Request) -> Policy:
    return request.app[POLICIES].review
