"""MiniProgramClient against the WeChat emulator over real HTTP, with a real Redis.

No mocks: the emulator runs on a loopback port (mounted under /_wechat the way the
server mounts it) and the client's token cache and refresh lock live in Redis.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from wechatpy.crypto import WeChatWxaCrypto
from wechatpy.exceptions import InvalidAppIdException

from miniprogram_api import (
    AccessTokenInvalid,
    CodeUsed,
    InvalidCode,
    InvalidOpenid,
    MiniProgramClient,
    NoRecentVisit,
    NotSubscribed,
    RateLimited,
    SystemBusy,
    TemplateDataInvalid,
    WeChatError,
    WeChatUnavailable,
    error_for,
)
from miniprogram_api.emulator import STATE, EmulatorState, create_emulator_app

APPID = "wx1234567890abcdef"
SECRET = "emulator-test-secret-0123456789"
TOKEN_KEY = f"wechat:access_token:{APPID}"
STABLE_TOKEN = "/cgi-bin/stable_token"
CODE2SESSION = "/sns/jscode2session"
SEC_CHECK = "/wxa/msg_sec_check"
SEND = "/cgi-bin/message/subscribe/send"
TEMPLATE = "tmpl_coupon_ready"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class Emulator:
    """The test's side of the emulator: its control endpoints and its state."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, state: EmulatorState) -> None:
        self.http = http
        self.base_url = base_url
        self.state = state

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(self.base_url + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        async with self.http.get(self.base_url + path, params=params) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def login_code(self, openid: str, unionid: str | None = None) -> str:
        body: dict[str, Any] = {"openid": openid}
        if unionid is not None:
            body["unionid"] = unionid
        return str((await self.post("/login-code", body))["code"])

    async def fault(self, path: str, **fault: Any) -> None:
        await self.post("/faults", {"path": path, **fault})

    async def calls(self, path: str) -> int:
        return int((await self.get("/calls")).get(path, 0))


@pytest.fixture
async def mp_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory, http: aiohttp.ClientSession) -> Emulator:
    emulator_app = create_emulator_app(APPID, SECRET)
    root = web.Application()
    root.add_subapp("/_wechat", emulator_app)
    server = await aiohttp_server(root)
    return Emulator(http, str(server.make_url("/_wechat")), emulator_app[STATE])


@pytest.fixture
def make_client(
    http: aiohttp.ClientSession, mp_redis: aioredis.Redis, emulator: Emulator
) -> Callable[..., MiniProgramClient]:
    def make(**overrides: Any) -> MiniProgramClient:
        options: dict[str, Any] = {"timeout": 2.0, "max_retries": 2, "backoff": 0.01}
        options.update(overrides)
        options.setdefault("session", http)
        options.setdefault("redis", mp_redis)
        return MiniProgramClient(appid=APPID, secret=SECRET, base_url=emulator.base_url, **options)

    return make


@pytest.fixture
def mp(make_client: Callable[..., MiniProgramClient]) -> MiniProgramClient:
    return make_client()


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "cls"),
    [
        (40029, InvalidCode),
        (40163, CodeUsed),
        (45011, RateLimited),
        (-1, SystemBusy),
        (40001, AccessTokenInvalid),
        (42001, AccessTokenInvalid),
        (43101, NotSubscribed),
        (47003, TemplateDataInvalid),
        (40003, InvalidOpenid),
        (99999, WeChatError),
    ],
)
def test_error_for_maps_codes_to_types(errcode: int, cls: type[WeChatError]) -> None:
    error = error_for(errcode, "msg")
    assert type(error) is cls
    assert (error.errcode, error.errmsg) == (errcode, "msg")


# -- login ----------------------------------------------------------------------


async def test_code2session_returns_openid_and_fresh_session_key(mp: MiniProgramClient, emulator: Emulator) -> None:
    first = await mp.code2session(await emulator.login_code("o_alice"))
    second = await mp.code2session(await emulator.login_code("o_alice"))

    assert first.openid == second.openid == "o_alice"
    assert first.unionid is None
    assert len(base64.b64decode(first.session_key)) == 16
    assert first.session_key != second.session_key
    assert first.session_key not in repr(first)


async def test_code2session_returns_unionid_when_bound(mp: MiniProgramClient, emulator: Emulator) -> None:
    result = await mp.code2session(await emulator.login_code("o_bob", unionid="u_bob"))
    assert (result.openid, result.unionid) == ("o_bob", "u_bob")


async def test_unknown_code_is_invalid(mp: MiniProgramClient, emulator: Emulator) -> None:
    with pytest.raises(InvalidCode) as caught:
        await mp.code2session("no-such-code")
    assert caught.value.errcode == 40029
    assert await emulator.calls(CODE2SESSION) == 1


async def test_expired_code_is_invalid(mp: MiniProgramClient, emulator: Emulator) -> None:
    code = await emulator.login_code("o_alice")
    later = time.monotonic() + emulator.state.code_ttl + 1
    emulator.state.clock = lambda: later
    with pytest.raises(InvalidCode):
        await mp.code2session(code)


async def test_reused_code_is_rejected(mp: MiniProgramClient, emulator: Emulator) -> None:
    code = await emulator.login_code("o_alice")
    await mp.code2session(code)
    with pytest.raises(CodeUsed) as caught:
        await mp.code2session(code)
    assert caught.value.errcode == 40163


async def test_wrong_secret_is_not_retried(
    emulator: Emulator, http: aiohttp.ClientSession, mp_redis: aioredis.Redis
) -> None:
    client = MiniProgramClient(session=http, redis=mp_redis, appid=APPID, secret="wrong", base_url=emulator.base_url)
    with pytest.raises(WeChatError) as caught:
        await client.code2session(await emulator.login_code("o_alice"))
    assert caught.value.errcode == 40125
    assert "wrong" not in str(caught.value)
    assert await emulator.calls(CODE2SESSION) == 1


# -- retries and transport failures -----------------------------------------------


async def test_busy_twice_then_success(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(CODE2SESSION, errcode=-1, times=2)
    result = await mp.code2session(await emulator.login_code("o_alice"))
    assert result.openid == "o_alice"
    assert await emulator.calls(CODE2SESSION) == 3


async def test_busy_beyond_retries_raises_system_busy(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(CODE2SESSION, errcode=-1, times=10)
    with pytest.raises(SystemBusy):
        await mp.code2session(await emulator.login_code("o_alice"))
    assert await emulator.calls(CODE2SESSION) == 3


async def test_rate_limit_raises_at_once(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(CODE2SESSION, errcode=45011, times=1)
    with pytest.raises(RateLimited):
        await mp.code2session(await emulator.login_code("o_alice"))
    assert await emulator.calls(CODE2SESSION) == 1


async def test_slow_wechat_gives_unavailable_within_bound(
    make_client: Callable[..., MiniProgramClient], emulator: Emulator
) -> None:
    mp = make_client(timeout=0.2, max_retries=1, backoff=0.01)
    await emulator.fault(STABLE_TOKEN, delay=2.0, times=5)
    started = time.monotonic()
    with pytest.raises(WeChatUnavailable) as caught:
        await mp.get_access_token()
    assert time.monotonic() - started < 1.0
    assert caught.value.attempts == 2
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_one_slow_answer_is_retried(make_client: Callable[..., MiniProgramClient], emulator: Emulator) -> None:
    mp = make_client(timeout=0.2)
    await emulator.fault(CODE2SESSION, delay=1.0, times=1)
    # The abandoned first attempt must not have used up the single-use code.
    assert (await mp.code2session(await emulator.login_code("o_alice"))).openid == "o_alice"
    assert await emulator.calls(CODE2SESSION) == 2


async def test_dropped_connection_is_retried(mp: MiniProgramClient, emulator: Emulator) -> None:
    # A POST: aiohttp itself silently retries idempotent GETs once, so only a
    # POST proves that the client's own retry loop handled the drop.
    await emulator.fault(STABLE_TOKEN, drop=True, times=1)
    assert await mp.get_access_token()
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_dropped_connections_beyond_retries_give_unavailable(
    make_client: Callable[..., MiniProgramClient], emulator: Emulator
) -> None:
    mp = make_client(max_retries=1)
    await emulator.fault(STABLE_TOKEN, drop=True, times=5)
    with pytest.raises(WeChatUnavailable):
        await mp.get_access_token()
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_non_json_answer_is_retried(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(STABLE_TOKEN, garbage=True, times=1)
    assert await mp.get_access_token()
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_failures_never_log_or_raise_credentials(
    make_client: Callable[..., MiniProgramClient], emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    mp = make_client(timeout=0.2, max_retries=1)
    login = await mp.code2session(await emulator.login_code("o_alice"))
    token = await mp.get_access_token()
    await emulator.fault(SEC_CHECK, delay=1.0, times=1)
    await emulator.fault(SEC_CHECK, garbage=True, times=1)
    await emulator.fault(CODE2SESSION, drop=True, times=4)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(WeChatUnavailable) as unavailable:
        await mp.msg_sec_check("hello", "o_alice")
    with pytest.raises(WeChatUnavailable) as dropped:
        await mp.code2session("some-code")

    # Only the client's own records: the emulator's access log plays WeChat's side.
    client_logs = [r.getMessage() for r in caplog.records if r.name.startswith("miniprogram_api")]
    assert client_logs
    texts = [*client_logs, str(unavailable.value), str(dropped.value), repr(mp)]
    for secret in (SECRET, token, login.session_key):
        assert all(secret not in text for text in texts)


# -- access token -----------------------------------------------------------------


async def test_access_token_is_cached_in_redis(
    mp: MiniProgramClient, emulator: Emulator, mp_redis: aioredis.Redis
) -> None:
    first = await mp.get_access_token()
    second = await mp.get_access_token()

    assert first == second
    assert await emulator.calls(STABLE_TOKEN) == 1
    assert await mp_redis.get(TOKEN_KEY) == first.encode()
    # 7200 s minus the 300 s safety margin.
    assert 6890 <= await mp_redis.ttl(TOKEN_KEY) <= 6900


async def test_concurrent_callers_share_one_fetch(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(STABLE_TOKEN, delay=0.1, times=1)
    tokens = await asyncio.gather(*(mp.get_access_token() for _ in range(20)))
    assert len(set(tokens)) == 1
    assert await emulator.calls(STABLE_TOKEN) == 1


async def test_two_processes_share_one_fetch(
    make_client: Callable[..., MiniProgramClient], emulator: Emulator, redis_url: str
) -> None:
    # A second client with its own HTTP session and Redis connection stands in
    # for another server process.
    other_redis = aioredis.from_url(redis_url)
    try:
        async with aiohttp.ClientSession() as other_http:
            first = make_client()
            second = make_client(session=other_http, redis=other_redis)
            await emulator.fault(STABLE_TOKEN, delay=0.1, times=1)
            tokens = await asyncio.gather(*(client.get_access_token() for client in (first, second) for _ in range(10)))
    finally:
        await other_redis.aclose()
    assert len(set(tokens)) == 1
    assert await emulator.calls(STABLE_TOKEN) == 1


async def test_force_refresh_gets_a_new_token(mp: MiniProgramClient, emulator: Emulator) -> None:
    old = await mp.get_access_token()
    new = await mp.get_access_token(force_refresh=True)
    assert new != old
    assert await mp.get_access_token() == new
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_token_rotates_near_expiry_and_old_one_keeps_working(
    mp: MiniProgramClient, emulator: Emulator, mp_redis: aioredis.Redis
) -> None:
    old = await mp.get_access_token()
    later = time.monotonic() + 7200 - 100
    emulator.state.clock = lambda: later
    await mp_redis.delete(TOKEN_KEY)  # as if the cache entry had expired

    new = await mp.get_access_token()
    assert new != old
    assert 6890 <= await mp_redis.ttl(TOKEN_KEY) <= 6900
    for token in (old, new):
        await mp_redis.set(TOKEN_KEY, token)
        assert (await mp.msg_sec_check("hi", "o_alice")).suggest == "pass"
    assert await emulator.calls(STABLE_TOKEN) == 2
    assert await emulator.calls(SEC_CHECK) == 2


async def test_invalid_token_is_refreshed_once(
    mp: MiniProgramClient, emulator: Emulator, mp_redis: aioredis.Redis
) -> None:
    await mp_redis.set(TOKEN_KEY, "a-token-wechat-never-issued")
    result = await mp.msg_sec_check("hello", "o_alice")

    assert result.suggest == "pass"
    assert await emulator.calls(STABLE_TOKEN) == 1
    assert await emulator.calls(SEC_CHECK) == 2
    assert await mp_redis.get(TOKEN_KEY) == emulator.state.current_token.encode()  # type: ignore[union-attr]


async def test_expired_token_is_refreshed_once(mp: MiniProgramClient, emulator: Emulator) -> None:
    old = await mp.get_access_token()
    await emulator.post("/expire-tokens", {})
    result = await mp.msg_sec_check("hello", "o_alice")

    assert result.suggest == "pass"
    assert await emulator.calls(STABLE_TOKEN) == 2
    assert await emulator.calls(SEC_CHECK) == 2
    assert await mp.get_access_token() != old


async def test_token_rejected_after_refresh_raises(mp: MiniProgramClient, emulator: Emulator) -> None:
    await emulator.fault(SEC_CHECK, errcode=40001, times=5)
    with pytest.raises(AccessTokenInvalid):
        await mp.msg_sec_check("hello", "o_alice")
    assert await emulator.calls(SEC_CHECK) == 2
    assert await emulator.calls(STABLE_TOKEN) == 2


async def test_concurrent_token_failures_force_refresh_once(
    mp: MiniProgramClient, emulator: Emulator, mp_redis: aioredis.Redis
) -> None:
    await mp_redis.set(TOKEN_KEY, "a-token-wechat-never-issued")
    results = await asyncio.gather(*(mp.msg_sec_check("hello", "o_alice") for _ in range(10)))
    assert {r.suggest for r in results} == {"pass"}
    assert await emulator.calls(STABLE_TOKEN) == 1


# -- phone number and encrypted data -------------------------------------------------


async def test_phone_number_and_reused_phone_code(mp: MiniProgramClient, emulator: Emulator) -> None:
    code = (await emulator.post("/phone-code", {"openid": "o_alice", "phone_number": "+86 13800138000"}))["code"]
    info = await mp.get_phone_number(code)

    assert (info.phone_number, info.pure_phone_number, info.country_code) == ("+86 13800138000", "13800138000", "86")
    assert info.watermark_appid == APPID
    assert abs(info.watermark_timestamp - time.time()) < 60
    with pytest.raises(CodeUsed):
        await mp.get_phone_number(code)
    with pytest.raises(InvalidCode):
        await mp.get_phone_number("no-such-code")


async def test_emulator_sends_the_documented_numeric_country_code(mp: MiniProgramClient, emulator: Emulator) -> None:
    # WeChat's documented example: "countryCode": 86, a JSON number.
    code = (await emulator.post("/phone-code", {"phone_number": "+86 13800138000"}))["code"]
    token = await mp.get_access_token()
    url = f"{emulator.base_url}/wxa/business/getuserphonenumber"
    async with emulator.http.post(url, params={"access_token": token}, json={"code": code}) as resp:
        info = (await resp.json())["phone_info"]
    assert info["countryCode"] == 86 and isinstance(info["countryCode"], int)


@pytest.mark.parametrize("country", [86, "86"])
async def test_client_accepts_country_code_as_number_or_string(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, mp_redis: aioredis.Redis, country: object
) -> None:
    async def token(_: web.Request) -> web.Response:
        return web.json_response({"access_token": "t", "expires_in": 7200})

    async def phone(_: web.Request) -> web.Response:
        info = {
            "phoneNumber": "+8613800138000",
            "purePhoneNumber": "13800138000",
            "countryCode": country,
            "watermark": {"timestamp": 1, "appid": APPID},
        }
        return web.json_response({"errcode": 0, "errmsg": "ok", "phone_info": info})

    app = web.Application()
    app.router.add_post(STABLE_TOKEN, token)
    app.router.add_post("/wxa/business/getuserphonenumber", phone)
    server = await aiohttp_server(app)
    mp = MiniProgramClient(session=http, redis=mp_redis, appid=APPID, secret=SECRET, base_url=str(server.make_url("/")))
    assert (await mp.get_phone_number("any")).country_code == "86"


async def test_encrypted_data_round_trips_through_wechatpy(mp: MiniProgramClient, emulator: Emulator) -> None:
    login = await mp.code2session(await emulator.login_code("o_alice"))
    user = {"nickName": "小明", "gender": 1}
    sealed = await emulator.post("/encrypted-data", {"openid": "o_alice", "data": user})

    plain = WeChatWxaCrypto(login.session_key, sealed["iv"], APPID).decrypt_message(sealed["encrypted_data"])

    assert {k: plain[k] for k in user} == user
    assert plain["watermark"]["appid"] == APPID
    signature = hashlib.sha1((sealed["raw_data"] + login.session_key).encode()).hexdigest()
    assert sealed["signature"] == signature


async def test_encrypted_data_for_another_app_is_refused(mp: MiniProgramClient, emulator: Emulator) -> None:
    login = await mp.code2session(await emulator.login_code("o_alice"))
    sealed = await emulator.post(
        "/encrypted-data", {"openid": "o_alice", "data": {"nickName": "x"}, "watermark_appid": "wx_someone_else"}
    )
    with pytest.raises(InvalidAppIdException):
        WeChatWxaCrypto(login.session_key, sealed["iv"], APPID).decrypt_message(sealed["encrypted_data"])


# -- subscribe messages ------------------------------------------------------------


async def test_subscribe_message_needs_an_acceptance_per_send(mp: MiniProgramClient, emulator: Emulator) -> None:
    data = {"thing1": {"value": "优惠券已到账"}, "time2": {"value": "2024-05-01 10:00"}}
    await emulator.login_code("o_alice")
    with pytest.raises(NotSubscribed):
        await mp.send_subscribe_message("o_alice", TEMPLATE, data)

    await emulator.post("/subscriptions", {"openid": "o_alice", "template_id": TEMPLATE, "count": 1})
    await mp.send_subscribe_message("o_alice", TEMPLATE, data, page="pages/wallet/index")
    with pytest.raises(NotSubscribed):
        await mp.send_subscribe_message("o_alice", TEMPLATE, data)

    sent = await emulator.get("/sent-messages", {"openid": "o_alice"})
    assert [(m["template_id"], m["page"], m["data"]) for m in sent] == [(TEMPLATE, "pages/wallet/index", data)]
    assert await emulator.get("/sent-messages", {"openid": "o_nobody"}) == []


async def test_overlong_thing_is_rejected_without_using_the_acceptance(
    mp: MiniProgramClient, emulator: Emulator
) -> None:
    await emulator.post("/subscriptions", {"openid": "o_alice", "template_id": TEMPLATE})
    with pytest.raises(TemplateDataInvalid):
        await mp.send_subscribe_message("o_alice", TEMPLATE, {"thing1": {"value": "字" * 21}})
    await mp.send_subscribe_message("o_alice", TEMPLATE, {"thing1": {"value": "字" * 20}})
    assert len(await emulator.get("/sent-messages")) == 1


async def test_unknown_openid_is_rejected(mp: MiniProgramClient) -> None:
    with pytest.raises(InvalidOpenid):
        await mp.send_subscribe_message("o_stranger", TEMPLATE, {"thing1": {"value": "hi"}})


# -- mini-program code and content check ---------------------------------------------


async def test_unlimited_code_is_a_png(mp: MiniProgramClient) -> None:
    image, content_type = await mp.get_unlimited_code("c=123&s=9", "pages/campaign/detail")

    assert content_type == "image/png"
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    assert (width, height) == (430, 430)


async def test_overlong_scene_is_an_error(mp: MiniProgramClient) -> None:
    with pytest.raises(WeChatError) as caught:
        await mp.get_unlimited_code("s" * 33, "pages/campaign/detail")
    assert caught.value.errcode == 40169


async def test_msg_sec_check_pass_and_risky(mp: MiniProgramClient) -> None:
    ok = await mp.msg_sec_check("春季满减活动", "o_admin")
    risky = await mp.msg_sec_check("含有违禁内容", "o_admin")
    assert (ok.suggest, ok.label) == ("pass", 100)
    assert (risky.suggest, risky.label) == ("risky", 20001)


async def test_risk_rank_is_what_was_set_for_a_recent_user(mp: MiniProgramClient, emulator: Emulator) -> None:
    await mp.code2session(await emulator.login_code("o_risky"))
    await mp.code2session(await emulator.login_code("o_plain"))
    await emulator.post("/risk-rank", {"openid": "o_risky", "rank": 4})
    assert await mp.get_user_risk_rank("o_risky", client_ip="203.0.113.9") == 4
    assert await mp.get_user_risk_rank("o_plain", client_ip="203.0.113.9", scene=0) == 0


async def test_risk_rank_of_a_user_not_seen_for_two_hours_is_61010(mp: MiniProgramClient, emulator: Emulator) -> None:
    with pytest.raises(NoRecentVisit) as never_seen:
        await mp.get_user_risk_rank("o_stranger", client_ip="203.0.113.9")
    assert never_seen.value.errcode == 61010
    await mp.code2session(await emulator.login_code("o_old"))
    emulator.state.last_login["o_old"] -= 2 * 3600 + 1
    with pytest.raises(NoRecentVisit):
        await mp.get_user_risk_rank("o_old", client_ip="203.0.113.9")


async def test_risk_rank_control_refuses_a_rank_out_of_range(emulator: Emulator) -> None:
    async with emulator.http.post(emulator.base_url + "/risk-rank", json={"openid": "o_x", "rank": 5}) as resp:
        assert resp.status == 400


# -- base URL ----------------------------------------------------------------------


async def test_root_mount_with_trailing_slash(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, mp_redis: aioredis.Redis
) -> None:
    server = await aiohttp_server(create_emulator_app(APPID, SECRET))
    mp = MiniProgramClient(session=http, redis=mp_redis, appid=APPID, secret=SECRET, base_url=str(server.make_url("/")))
    async with http.post(server.make_url("/login-code"), json={"openid": "o_alice"}) as resp:
        code = (await resp.json())["code"]
    assert (await mp.code2session(code)).openid == "o_alice"
    assert (await mp.msg_sec_check("hi", "o_alice")).suggest == "pass"
