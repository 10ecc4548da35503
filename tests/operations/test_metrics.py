"""``GET /metrics``: Prometheus text with a grab counted by route template and outcome,
WeChat calls by API and errcode, the claims backlog; open in development, a bearer
token or a separate listener in production."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from miniprogram_api import MiniProgramClient
from server.app import WECHAT_HOOKS
from server.settings import Settings, SettingsError
from services.core import request_id_var
from tests.helpers import customer_login, error_of
from tests.infra import free_port
from tests.stock.fixtures import customers, live_coupon

TOKEN = "metrics-token-0123456789abcdef"


def sample(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


async def test_a_grab_is_counted(client: TestClient) -> None:
    before = await (await client.get("/metrics")).text()
    coupon = await live_coupon(client, stock=1)
    (alice, bob) = await customers(client, 2)
    assert (await client.post(coupon.grab_path, headers=alice)).status == 201
    assert (await client.post(coupon.grab_path, headers=bob)).status == 409

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    after = await resp.text()
    route = "/api/v1/coupons/{coupon_id}/grab"  # the template, never /api/v1/coupons/17/grab
    count = "wxcampaign_http_request_duration_seconds_count"
    for status in ("201", "409"):
        grown = sample(after, count, route=route, status=status) - sample(before, count, route=route, status=status)
        assert grown == 1, status
    assert f'route="/api/v1/coupons/{coupon.template.id}/grab"' not in after
    ok = "wxcampaign_grab_outcomes_total"
    assert sample(after, ok, outcome="ok") - sample(before, ok, outcome="ok") == 1
    assert sample(after, ok, outcome="coupon_sold_out") - sample(before, ok, outcome="coupon_sold_out") == 1
    # Read at scrape time: the claim waits in its stream (no worker runs in this app).
    assert sample(after, "wxcampaign_claims_stream_length") == 1
    assert sample(after, "wxcampaign_claims_consumer_lag") == 1
    assert 'wxcampaign_outbox_backlog{status="pending"}' in after


async def test_wechat_calls_are_counted_by_api_and_errcode(client: TestClient) -> None:
    name = "wxcampaign_wechat_calls_total"
    before = await (await client.get("/metrics")).text()
    await customer_login(client, "o_metrics")
    resp = await client.post("/api/v1/auth/wechat/login", json={"code": "no-such-code"})
    assert resp.status == 400
    after = await (await client.get("/metrics")).text()
    api = "/sns/jscode2session"
    assert sample(after, name, api=api, errcode="0") - sample(before, name, api=api, errcode="0") == 1
    assert sample(after, name, api=api, errcode="40029") - sample(before, name, api=api, errcode="40029") == 1


async def test_the_request_id_is_forwarded_to_wechat(redis: Redis) -> None:
    """A real HTTP server standing in for WeChat records the header it was sent."""
    seen: list[str | None] = []

    async def stable_token(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Request-Id"))
        return web.json_response({"access_token": "t0", "expires_in": 7200})

    wechat = web.Application()
    wechat.router.add_post("/cgi-bin/stable_token", stable_token)
    async with TestServer(wechat, host="127.0.0.1") as fake, aiohttp.ClientSession() as session:
        client = MiniProgramClient(
            session=session, redis=redis, appid="wx_fwd", secret="s", base_url=str(fake.make_url("")),
            hooks=WECHAT_HOOKS,
        )  # fmt: skip
        token = request_id_var.set("rid-forwarded-1")
        try:
            assert await client.get_access_token() == "t0"
        finally:
            request_id_var.reset(token)
    assert seen == ["rid-forwarded-1"]


async def test_a_token_guards_metrics_and_production_hides_them(client_with) -> None:
    guarded = await client_with(metrics_token=TOKEN)
    resp = await guarded.get("/metrics")
    assert resp.status == 401 and (await error_of(resp))["code"] == "unauthenticated"
    resp = await guarded.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert resp.status == 401 and (await error_of(resp))["code"] == "invalid_token"
    resp = await guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and "wxcampaign_http_request_duration_seconds" in await resp.text()

    production = await client_with(app_env="production", metrics_token=None)
    resp = await production.get("/metrics")
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"


async def test_metrics_listen_serves_them_on_their_own_address(client_with) -> None:
    port = free_port()
    app = await client_with(app_env="production", metrics_listen=f"127.0.0.1:{port}")
    assert (await app.get("/metrics")).status == 404  # not on the public port
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        assert "wxcampaign_claims_backlog_age_seconds" in await resp.text()
        async with session.get(f"http://127.0.0.1:{port}/api/v1/me") as other:
            assert other.status == 404  # that listener serves nothing else


def test_metrics_settings_are_checked() -> None:
    assert Settings.from_env(env={"METRICS_LISTEN": "127.0.0.1:9100"}).metrics_address == ("127.0.0.1", 9100)
    assert Settings.from_env(env={"METRICS_LISTEN": "[::1]:9100"}).metrics_address == ("::1", 9100)
    for bad in ("9100", "127.0.0.1:", "127.0.0.1:99999", ":9100"):
        with pytest.raises(SettingsError, match="METRICS_LISTEN must be host:port"):
            Settings.from_env(env={"METRICS_LISTEN": bad})
    with pytest.raises(SettingsError, match="METRICS_TOKEN must be at least 16 characters"):
        Settings.from_env(env={"METRICS_TOKEN": "short"})
    assert "metrics-token" not in repr(Settings.from_env(env={"METRICS_TOKEN": TOKEN}))
