"""What the feed knows of one viewer: their facts (tier, interests, preferred store, the
categories they bought lately and the campaigns they joined: one SQL statement, kept in
the customer's feed profile, services/feed/profile.py), with where and in which language
they ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise import connections

from models.customers import Customer
from services.core import Params, dialect_of, errors

#: Days of purchases that make "categories bought".
BEHAVIOUR_DAYS = 90
_INTERESTS = Customer._meta.fields_map["interest_tags"]


@dataclass(frozen=True, slots=True)
class Facts:
    """What the feed reads of a customer in the database: changed only by the events that
    bump their viewer version (services/feed/rankings.py), or by purchases leaving the
    ``BEHAVIOUR_DAYS`` window."""

    tier: str
    interests: frozenset[str]
    preferred_store_id: int | None
    bought: frozenset[str]
    joined: frozenset[int]


@dataclass(frozen=True)
class Viewer:
    customer_id: int
    tier: str
    interests: frozenset[str]
    preferred_store_id: int | None
    bought: frozenset[str]
    joined: frozenset[int]
    location: tuple[float, float] | None
    store_id: int | None
    language: str


def _viewer_sql(p: Params, customer_id: int, since: datetime) -> str:
    """The customer's tier, interests and preferred store, the categories of their
    applied purchases since ``since`` and the campaigns they joined: one statement (the
    ORM would take three queries, each with its own trip to the database)."""
    if p.dialect == "postgres":
        bought, joined = (
            "COALESCE(json_agg(e.categories), '[]'::json)::text",
            "COALESCE(json_agg(x.campaign_id), '[]'::json)::text",
        )
    else:
        bought, joined = "json_group_array(json(e.categories))", "json_group_array(x.campaign_id)"
    return (
        f"SELECT c.membership_tier, c.interest_tags, c.preferred_store_id,"
        f" (SELECT {bought} FROM integration_events e WHERE e.customer_id = c.id AND e.type = 'purchase'"
        f" AND e.status = 'applied' AND e.occurred_at >= {p(since)}),"
        f" (SELECT {joined} FROM participations x WHERE x.customer_id = c.id)"
        f" FROM customers c WHERE c.id = {p(customer_id)}"
    )


async def facts_of(customer_id: int, now: datetime) -> Facts:
    """The customer's facts now; ``InvalidToken`` when the account is gone."""
    conn = connections.get("default")
    p = Params(dialect_of(conn))
    _, rows = await conn.execute_query(_viewer_sql(p, customer_id, now - timedelta(days=BEHAVIOUR_DAYS)), p.values)
    if not rows:
        raise errors.InvalidToken("the account is gone")
    tier, interests, preferred_store_id, bought_json, joined_json = tuple(rows[0])
    bought: set[str] = set()
    for categories in json.loads(bought_json):
        bought.update(categories or [])
    return Facts(
        tier=tier, interests=frozenset(_INTERESTS.to_python_value(interests) or []),
        preferred_store_id=preferred_store_id, bought=frozenset(bought), joined=frozenset(json.loads(joined_json)),
    )  # fmt: skip


def viewer_of(
    customer_id: int, facts: Facts, language: str, *, store_id: int | None, lat: float | None, lng: float | None
) -> Viewer:
    """The viewer these facts make, asking from ``store_id`` or ``lat``/``lng``."""
    return Viewer(
        customer_id=customer_id, tier=facts.tier, interests=facts.interests,
        preferred_store_id=facts.preferred_store_id, bought=facts.bought, joined=facts.joined,
        location=(lat, lng) if lat is not None and lng is not None else None, store_id=store_id, language=language,
    )  # fmt: skip


async def viewer(
    customer_id: int, language: str, now: datetime, *, store_id: int | None, lat: float | None, lng: float | None
) -> Viewer:
    """The viewer from the database now (the feed's runtime reads the facts from the
    customer's profile when it is current)."""
    facts = await facts_of(customer_id, now)
    return viewer_of(customer_id, facts, language, store_id=store_id, lat=lat, lng=lng)
