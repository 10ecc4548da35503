"""Customer login through code2Session on the emulator, token refresh, logout."""

from __future__ import annotations

import asyncio
import time

from models.customers import Customer
from models.sessions import RefreshToken
from tests.helpers import bearer, customer_login, error_of, fault, login_code, wechat_calls

LOGIN = "/api/v1/auth/wechat/login"
REFRESH = "/api/v1/auth/refresh"


async def test_new_user_gets_tokens_and_profile(client):
    body = await customer_login(client, "o_alice")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["membership_tier"] == "standard"
    assert "session_key" not in str(body)
    customer = await Customer.get(openid="o_alice")
    assert customer.id == body["user"]["id"]
    assert customer.session_key  # kept server-side
    assert customer.session_key not in str(body)


async def test_returning_user_is_the_same_user_with_a_fresh_session_key(client):
    first = await customer_login(client, "o_bob")
    key_1 = (await Customer.get(openid="o_bob")).session_key
    second = await customer_login(client, "o_bob")
    key_2 = (await Customer.get(openid="o_bob")).session_key
    assert first["user"]["id"] == second["user"]["id"]
    assert key_1 != key_2
    assert await Customer.filter(openid="o_bob").count() == 1


async def test_unionid_is_kept(client):
    await customer_login(client, "o_carol", unionid="u_carol")
    assert (await Customer.get(openid="o_carol")).unionid == "u_carol"
    # A later login without unionid does not erase it.
    await customer_login(client, "o_carol")
    assert (await Customer.get(openid="o_carol")).unionid == "u_carol"


async def test_concurrent_first_logins_of_one_openid_make_one_user(client):
    codes = [await login_code(client, "o_race") for _ in range(8)]
    resps = await asyncio.gather(*(client.post(LOGIN, json={"code": c}) for c in codes))
    ids = {(await r.json())["user"]["id"] for r in resps if r.status == 200}
    assert [r.status for r in resps] == [200] * 8
    assert len(ids) == 1
    assert await Customer.filter(openid="o_race").count() == 1


async def test_invalid_code(client):
    resp = await client.post(LOGIN, json={"code": "not-a-code"})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "invalid_login_code"
    assert await Customer.all().count() == 0


async def test_reused_code(client):
    code = await login_code(client, "o_dave")
    assert (await client.post(LOGIN, json={"code": code})).status == 200
    resp = await client.post(LOGIN, json={"code": code})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "login_code_used"


async def test_wechat_busy_once_is_retried(client):
    code = await login_code(client, "o_erin")
    await fault(client, "/sns/jscode2session", errcode=-1, times=1)
    resp = await client.post(LOGIN, json={"code": code})
    assert resp.status == 200, await resp.text()
    assert (await wechat_calls(client))["/sns/jscode2session"] == 2


async def test_wechat_busy_throughout_is_503(client):
    code = await login_code(client, "o_frank")
    await fault(client, "/sns/jscode2session", errcode=-1, times=10)
    resp = await client.post(LOGIN, json={"code": code})
    assert resp.status == 503
    error = await error_of(resp)
    assert error["code"] == "wechat_busy"
    assert error["details"]["wechat_errcode"] == -1
    # WECHAT_MAX_RETRIES=2 in tests: one call and two retries, no more.
    assert (await wechat_calls(client))["/sns/jscode2session"] == 3
    assert await Customer.all().count() == 0


async def test_wechat_rate_limit_is_429(client):
    code = await login_code(client, "o_gina")
    await fault(client, "/sns/jscode2session", errcode=45011, times=1)
    resp = await client.post(LOGIN, json={"code": code})
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "wechat_rate_limited"
    # The docs promise every 429 a Retry-After; WeChat's 45011 quota is per minute.
    assert resp.headers["Retry-After"] == "60"


def test_every_429_in_the_catalogue_carries_retry_after():
    # The shared error builder, not each route, guarantees the header.
    from server.middlewares import error_response
    from services.core import catalogue

    for error in catalogue():
        if error.status == 429:
            assert int(error_response(error()).headers["Retry-After"]) >= 1, error.code


async def test_wechat_timeout_is_503_within_bounds(client_with):
    client = await client_with(wechat_timeout=1.0)
    code = await login_code(client, "o_hank")
    # WeChat gets 1 s per call here, and the test settings give it 2 retries.
    await fault(client, "/sns/jscode2session", delay=3.0, times=3)
    started = time.monotonic()
    resp = await client.post(LOGIN, json={"code": code})
    elapsed = time.monotonic() - started
    assert resp.status == 503
    assert (await error_of(resp))["code"] == "wechat_unavailable"
    assert elapsed < 6.0


async def test_wechat_dropped_connection_is_retried(client):
    code = await login_code(client, "o_ivy")
    await fault(client, "/sns/jscode2session", drop=True, times=1)
    resp = await client.post(LOGIN, json={"code": code})
    assert resp.status == 200, await resp.text()


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    tokens = await customer_login(client, "o_jack")
    resp = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200
    rotated = await resp.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    me = await client.get("/api/v1/me", headers=bearer(rotated["access_token"]))
    assert me.status == 200

    # The old token again: reuse. The whole family dies, including the new token.
    resp = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "refresh_token_reused"
    resp = await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "invalid_refresh_token"
    assert await RefreshToken.filter(revoked_at=None).count() == 0


async def test_concurrent_refreshes_of_one_token_let_at_most_one_through(client):
    tokens = await customer_login(client, "o_kim")
    resps = await asyncio.gather(
        *(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}) for _ in range(10))
    )
    statuses = sorted(r.status for r in resps)
    assert statuses.count(200) <= 1
    assert all(s in (200, 401) for s in statuses)
    # Any reuse revokes the family, so no token of it survives.
    assert await RefreshToken.filter(revoked_at=None).count() == 0


async def test_unknown_refresh_token(client):
    resp = await client.post(REFRESH, json={"refresh_token": "nope"})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "invalid_refresh_token"


async def test_logout_ends_the_session(client):
    tokens = await customer_login(client, "o_lee")
    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 204
    resp = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401
    # Logging out twice is harmless.
    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 204


async def test_two_logins_are_independent_sessions(client):
    phone = await customer_login(client, "o_mia")
    tablet = await customer_login(client, "o_mia")
    await client.post("/api/v1/auth/logout", json={"refresh_token": phone["refresh_token"]})
    resp = await client.post(REFRESH, json={"refresh_token": tablet["refresh_token"]})
    assert resp.status == 200
