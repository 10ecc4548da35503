"""List filters are strict: a filter over a fixed set of values (status, type, kind,
channel, trigger, sort) refuses a value outside it with 422 naming the parameter, rather
than answering an empty list as if nothing matched."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import pytest

from handlers import all_routes
from models.campaigns import CAMPAIGN_STATUSES, CAMPAIGN_TYPES, CHANNELS
from services.campaigns import spec
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin

#: Query parameters whose values come from a fixed set wherever they appear.
ENUM_FILTERS = frozenset({"status", "type", "kind", "channel", "trigger", "sort"})


def _is_literal(annotation: Any) -> bool:
    """A Literal, or an optional one (``Literal[...] | None``)."""
    if typing.get_origin(annotation) is Literal:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_literal(args[0])
    return False


def test_every_enum_filter_of_every_route_is_a_literal() -> None:
    loose = []
    for route in all_routes().routes:
        if route.query is None:
            continue
        for name, info in route.query.model_fields.items():
            if name in ENUM_FILTERS and not _is_literal(info.annotation):
                loose.append(f"{route.method} {route.path} ?{name}: {info.annotation}")
    assert loose == []


def test_the_literals_name_the_stored_values() -> None:
    assert typing.get_args(spec.CampaignStatus) == CAMPAIGN_STATUSES
    assert typing.get_args(spec.CampaignType) == CAMPAIGN_TYPES
    assert typing.get_args(spec.Channel) == CHANNELS


ADMIN_FILTERS = [
    ("/api/v1/admin/campaigns", "status", "active"),
    ("/api/v1/admin/campaigns", "type", "flash_sale"),
    ("/api/v1/admin/campaigns", "channel", "pos"),
    ("/api/v1/admin/notifications", "status", "sent"),
    ("/api/v1/admin/notifications", "kind", "reward"),
    ("/api/v1/admin/automation-rules", "trigger", "registered"),
    ("/api/v1/admin/analytics/overview", "sort", "clicks"),
]


@pytest.mark.parametrize(("path", "name", "good"), ADMIN_FILTERS)
async def test_an_unknown_filter_value_is_422_naming_it(
    client, monkeypatch: pytest.MonkeyPatch, path: str, name: str, good: str
) -> None:
    cheap_password_hashing(monkeypatch)
    auth = bearer((await logged_in_admin(client, "superadmin"))["access_token"])
    ok = await client.get(path, params={name: good}, headers=auth)
    assert ok.status == 200, await ok.text()
    for bad in ("bogus", "ACTIVE", ""):
        resp = await client.get(path, params={name: bad}, headers=auth)
        assert resp.status == 422, (bad, resp.status, await resp.text())
        error = await error_of(resp)
        assert error["code"] == "validation_failed"
        assert [e["field"] for e in error["details"]["errors"]] == [name], error
