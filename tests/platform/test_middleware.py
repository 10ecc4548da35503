"""The one request middleware (request id, error shape, access log) and the route
dispatch, through the real HTTP stack: every route passes through both, so their cheap
paths must keep the exact behaviour."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tortoise.exceptions import DBConnectionError

from server.app import create_app
from server.routing import json_body, json_response
from server.settings import Settings
from services.core import Out
from tests.helpers import bearer, customer_login, error_of

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug with a secret in its message: s3cret")


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/healthz")


async def _database_down(request: web.Request) -> web.Response:
    raise DBConnectionError("connection refused")


async def _client_with_test_routes(settings: Settings) -> TestClient:
    """The real app plus three plain aiohttp routes that fail in ways no real route should:
    a bug, a redirect and a lost database."""
    app = create_app(settings)
    app.router.add_get("/_test/boom", _boom)
    app.router.add_get("/_test/moved", _moved)
    app.router.add_get("/_test/database-down", _database_down)
    return TestClient(TestServer(app, host="127.0.0.1", port=settings.port))


async def test_a_sane_request_id_is_kept_and_others_are_replaced(client: TestClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "from-the-proxy.42_A"})
    assert resp.status == 200 and resp.headers["X-Request-ID"] == "from-the-proxy.42_A"
    for bad in ("has space", "x" * 65, "semi;colon", ""):
        resp = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert HEX_ID.match(resp.headers["X-Request-ID"]), bad
    resp = await client.get("/healthz")
    assert HEX_ID.match(resp.headers["X-Request-ID"])


async def test_concurrent_requests_get_their_own_ids_and_log_lines(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wxcampaign.access")
    alice = await customer_login(client, "o_alice")
    headers = bearer(alice["access_token"])
    answers = await asyncio.gather(*(client.get("/api/v1/me", headers=headers) for _ in range(40)))
    assert all(resp.status == 200 for resp in answers)
    ids = [resp.headers["X-Request-ID"] for resp in answers]
    assert len(set(ids)) == 40 and all(HEX_ID.match(i) for i in ids)
    lines = [r.getMessage() for r in caplog.records if r.name == "wxcampaign.access"]
    for rid in ids:
        (line,) = [line for line in lines if f"rid={rid}" in line]
        assert re.match(rf"^GET /api/v1/me 200 \d+\.\dms rid={rid} who=customer:{alice['user']['id']}$", line)


async def test_errors_carry_the_request_id_and_are_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wxcampaign.access")
    resp = await client.get("/api/v1/me", headers={"X-Request-ID": "no-token-1"})
    assert (await error_of(resp))["code"] == "unauthenticated" and resp.status == 401
    assert resp.headers["X-Request-ID"] == "no-token-1"
    resp = await client.get("/api/v1/me", headers={"Authorization": "Basic abc", "X-Request-ID": "basic-1"})
    assert (await error_of(resp))["code"] == "invalid_token" and resp.status == 401
    resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer    ", "X-Request-ID": "blank-1"})
    assert (await error_of(resp))["code"] == "invalid_token" and resp.status == 401
    messages = [r.getMessage() for r in caplog.records if r.name == "wxcampaign.access"]
    for rid in ("no-token-1", "basic-1", "blank-1"):
        assert any(m.startswith("GET /api/v1/me 401 ") and m.endswith(f"rid={rid} who=-") for m in messages)


async def test_a_denied_call_is_logged_with_its_caller(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """A 403 is exactly the call an operator wants to trace back to someone."""
    caplog.set_level(logging.INFO, logger="wxcampaign.access")
    alice = await customer_login(client, "o_alice")
    resp = await client.get("/api/v1/admin/me", headers={**bearer(alice["access_token"]), "X-Request-ID": "denied-1"})
    assert resp.status == 403 and (await error_of(resp))["code"] == "forbidden"
    messages = [r.getMessage() for r in caplog.records if r.name == "wxcampaign.access"]
    (line,) = [m for m in messages if "rid=denied-1" in m]
    assert re.match(rf"^GET /api/v1/admin/me 403 \d+\.\dms rid=denied-1 who=customer:{alice['user']['id']}$", line)


async def test_aiohttp_errors_are_shaped(client: TestClient) -> None:
    resp = await client.get("/api/v1/no-such-route")
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    assert HEX_ID.match(resp.headers["X-Request-ID"])
    resp = await client.delete("/healthz")
    assert resp.status == 405 and (await error_of(resp))["code"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_a_bug_is_a_500_naming_the_request_id_and_nothing_else(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with await _client_with_test_routes(settings) as client:
        resp = await client.get("/_test/boom", headers={"X-Request-ID": "bug-1"})
        assert resp.status == 500
        error = await error_of(resp)
        assert error["code"] == "internal_error" and error["details"] == {"request_id": "bug-1"}
        assert "s3cret" not in await resp.text()
        assert resp.headers["X-Request-ID"] == "bug-1"
    logged = [r for r in caplog.records if r.name == "wxcampaign.errors"]
    assert any("rid=bug-1" in r.getMessage() and r.exc_info for r in logged)


async def test_a_lost_database_is_a_503(settings: Settings) -> None:
    async with await _client_with_test_routes(settings) as client:
        resp = await client.get("/_test/database-down")
        assert resp.status == 503 and (await error_of(resp))["code"] == "database_unavailable"


async def test_a_redirect_passes_through_untouched(settings: Settings) -> None:
    async with await _client_with_test_routes(settings) as client:
        resp = await client.get("/_test/moved", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/healthz"


class _Sample(Out):
    title: dict[str, str]
    at: datetime
    maybe: int | None
    nested: list[dict[str, int]]


def test_json_body_is_what_model_dump_json_gives() -> None:
    sample = _Sample(
        title={"zh": "满100减20", "en": 'quote " and \\ slash'},
        at=datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC),
        maybe=None,
        nested=[{"a": 1}, {}],
    )
    assert json_body(sample) == sample.model_dump_json().encode()
    response = json_response(sample, status=201)
    assert response.status == 201 and response.content_type == "application/json"
    assert response.body == sample.model_dump_json().encode()
