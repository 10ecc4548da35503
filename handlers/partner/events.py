"""Events from POS and CRM systems, signed per integration (see services.activity.integrations)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from models.journey import Integration
from server.access import PUBLIC
from server.keys import JOURNEY, SETTINGS
from server.routing import RouteTable, json_response
from services.activity import events as journey_events
from services.activity import integrations
from services.campaigns import MAX_MONEY
from services.core import Body, Id, Out, errors

routes = RouteTable()

INTEGRATION = web.RequestKey("integration", Integration)
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")]
Category = Annotated[str, StringConstraints(min_length=1, max_length=32, strip_whitespace=True)]


class EventIn(Body):
    """One event. ``purchase`` needs ``order_ref`` and ``amount``; ``refund`` needs
    ``refund_of`` (the purchase's external id); ``profile`` needs ``tier`` (a CRM syncing
    the membership tier); every event names the customer by ``customer_id`` or
    ``openid`` (one of them)."""

    type: Literal["purchase", "visit", "refund", "profile"]
    external_id: ExternalId = Field(description="unique per integration: the same id again is a replay")
    occurred_at: AwareDatetime
    customer_id: Id | None = None
    openid: str | None = Field(default=None, min_length=1, max_length=64)
    order_ref: str | None = Field(default=None, min_length=1, max_length=64)
    amount: int | None = Field(default=None, ge=0, le=MAX_MONEY, description="fen (purchases)")
    store_id: Id | None = None
    categories: list[Category] = Field(default_factory=list, max_length=20)
    refund_of: ExternalId | None = Field(default=None, description="refunds: the purchase's external_id")
    tier: Literal["standard", "silver", "gold", "platinum"] | None = Field(
        default=None, description="profile events: the customer's membership tier in the CRM"
    )

    @model_validator(mode="after")
    def per_type(self) -> EventIn:
        if (self.customer_id is None) == (self.openid is None):
            raise ValueError("name the customer by customer_id or openid (exactly one)")
        if self.type == "purchase" and (self.order_ref is None or self.amount is None):
            raise ValueError("a purchase needs order_ref and amount")
        if self.type != "purchase" and (self.amount is not None or self.categories):
            raise ValueError("amount and categories are for purchases")
        if self.type == "refund" and self.refund_of is None:
            raise ValueError("a refund needs refund_of (the purchase's external_id)")
        if self.type != "refund" and self.refund_of is not None:
            raise ValueError("refund_of is for refunds")
        if (self.type == "profile") != (self.tier is not None):
            raise ValueError("a profile event needs tier, and tier is for profile events")
        if self.type == "profile" and (self.order_ref is not None or self.store_id is not None):
            raise ValueError("order_ref and store_id are not for profile events")
        return self


class EventProgressOut(Out):
    campaign_id: int
    participation_id: int
    delta: int
    value: int
    completed: bool = Field(description="this event completed the goal (the reward was granted)")


class EventTierOut(Out):
    from_tier: str
    to_tier: str
    changed: bool = Field(description="false: the customer already had this tier (nothing recorded)")


class EventOut(Out):
    event_id: int
    external_id: str
    type: str
    status: Literal["applied", "refunded", "pending"] = Field(
        description="applied; refunded (a purchase whose refund came first: it gave nothing); pending (a refund "
        "waiting for its purchase)"
    )
    points: int = Field(description="points this event gave (negative: taken back)")
    progress: list[EventProgressOut]
    tier: EventTierOut | None = Field(default=None, description="profile events: the tier before and after")
    replayed: bool = Field(description="true: this external_id was processed before; this is the first result")


async def _verify(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    request[INTEGRATION] = await integrations.authenticate(
        request.app[JOURNEY].redis,
        settings.secret_key,
        settings.integration_max_skew,
        request.headers.get("X-Api-Key"),
        request.headers.get("X-Timestamp"),
        request.headers.get("X-Nonce"),
        request.headers.get("X-Signature"),
        await request.read(),
    )


@routes.add(
    "POST", "/api/v1/integrations/events", access=PUBLIC, tags=("integrations",), body=EventIn, response=EventOut,
    status=201, also=(200,), guard=_verify,
    summary="Post a purchase, visit, refund or profile (tier sync) event (X-Api-Key, X-Timestamp, X-Nonce, "
    "X-Signature: hex HMAC-SHA256 of "
    "'<timestamp>.<nonce>.<body>'). 201 when new, 200 with the first result when the external_id was seen",
    errors=(errors.InvalidApiKey, errors.InvalidSignature, errors.StaleRequest, errors.ReplayedRequest,
            errors.EventConflict, errors.UnknownCustomer, errors.UnknownStore, errors.Conflict),
)  # fmt: skip
async def post_event(request: web.Request, body: EventIn) -> EventOut | web.Response:
    skew = request.app[SETTINGS].integration_max_skew
    if body.occurred_at > datetime.now(UTC) + timedelta(seconds=skew):
        raise errors.ValidationFailed(
            "body occurred_at: in the future",
            details={"errors": [{"field": "occurred_at", "message": "in the future", "type": "future"}]},
        )
    spec = journey_events.EventSpec(
        type=body.type, external_id=body.external_id, occurred_at=body.occurred_at.astimezone(UTC),
        customer_id=body.customer_id, openid=body.openid, order_ref=body.order_ref, amount=body.amount or 0,
        store_id=body.store_id, categories=tuple(body.categories), refund_of=body.refund_of, tier=body.tier,
    )  # fmt: skip
    result: dict[str, Any]
    result, created = await journey_events.ingest(request.app[JOURNEY], request[INTEGRATION].id, spec)
    out = EventOut.model_validate(result)
    return out if created else json_response(out, status=200)
