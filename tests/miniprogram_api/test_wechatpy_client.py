"""The emulator driven by a client nobody here wrote: wechatpy's own ``WeChatClient``.

wechatpy hard-codes ``https://api.weixin.qq.com``; a requests adapter sends those
URLs to the emulator instead (as a hosts entry would), so wechatpy's code runs
unchanged. wechatpy is synchronous, so each call runs in a thread while the event
loop serves the emulator.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
import requests
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from miniprogram_api.emulator import STATE, EmulatorState, create_emulator_app
from miniprogram_api.emulator.errors import EmulatedError
from server.settings import Settings
from tests.helpers import login_code

APPID = "wx1234567890abcdef"
SECRET = "emulator-test-secret-0123456789"
WECHAT = "https://api.weixin.qq.com/"
TEMPLATE = "tmpl_coupon_ready"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

T = TypeVar("T")
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class _ToEmulator(HTTPAdapter):
    """Sends requests for WeChat's host to the emulator's base URL (path and query kept)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._base_url = base_url.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None and request.url.startswith(WECHAT), request.url
        request.url = self._base_url + request.url[len(WECHAT) :]
        return super().send(request, *args, **kwargs)


def wechatpy_client(base_url: str, appid: str = APPID, secret: str = SECRET) -> WeChatClient:
    client = WeChatClient(appid, secret, timeout=5)
    client._http.mount(WECHAT, _ToEmulator(base_url))
    return client


async def in_thread(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


class Emulator:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, state: EmulatorState) -> None:
        self.http = http
        self.base_url = base_url
        self.state = state

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(self.base_url + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def calls(self) -> dict[str, int]:
        async with self.http.get(self.base_url + "/calls") as resp:
            return dict(await resp.json())


@pytest.fixture
async def emulator(aiohttp_server: ServerFactory) -> AsyncIterator[Emulator]:
    # Mounted as the server mounts it.
    emulator_app = create_emulator_app(APPID, SECRET)
    root = web.Application()
    root.add_subapp("/_wechat", emulator_app)
    server = await aiohttp_server(root)
    async with aiohttp.ClientSession() as http:
        yield Emulator(http, str(server.make_url("/_wechat")), emulator_app[STATE])


@pytest.fixture
def wx(emulator: Emulator) -> WeChatClient:
    return wechatpy_client(emulator.base_url)


async def test_token_flow_and_code2session(wx: WeChatClient, emulator: Emulator) -> None:
    code = await emulator.post("/login-code", {"openid": "o_alice", "unionid": "u_alice"})
    session = await in_thread(lambda: wx.wxa.code_to_session(code["code"]))

    assert session["openid"] == "o_alice" and session["unionid"] == "u_alice"
    assert base64.b64decode(session["session_key"]) and "errcode" not in session
    # wechatpy fetched its token through GET /cgi-bin/token first.
    assert (await emulator.calls())["/cgi-bin/token"] == 1
    with pytest.raises(WeChatClientException) as used:
        await in_thread(lambda: wx.wxa.code_to_session(code["code"]))
    assert used.value.errcode == 40163


async def test_cgi_token_replaces_the_previous_token_after_an_overlap(emulator: Emulator) -> None:
    state = emulator.state
    now = [1000.0]
    state.clock = lambda: now[0]
    first, expires_in = state.legacy_token()
    second, _ = state.legacy_token()
    assert first != second and expires_in == 7200
    state.check_token(first)  # both work during the overlap
    now[0] += state.token_overlap + 1
    state.check_token(second)
    with pytest.raises(EmulatedError) as expired:
        state.check_token(first)
    assert expired.value.errcode == 42001


async def test_bad_credentials_on_cgi_token(emulator: Emulator) -> None:
    wrong = WeChatClient(APPID, "not-the-secret")
    wrong._http.mount(WECHAT, _ToEmulator(emulator.base_url))
    with pytest.raises(WeChatClientException) as refused:
        await in_thread(wrong.fetch_access_token)
    assert refused.value.errcode == 40125


async def test_phone_number(wx: WeChatClient, emulator: Emulator) -> None:
    code = (await emulator.post("/phone-code", {"openid": "o_alice", "phone_number": "+86 13800138000"}))["code"]
    # wechatpy 1.8 has no wrapper for this API: its generic post, as its users write it.
    answer = await in_thread(lambda: wx.wxa._post("wxa/business/getuserphonenumber", data={"code": code}))

    info = answer["phone_info"]
    assert (info["purePhoneNumber"], info["countryCode"]) == ("13800138000", 86)
    assert info["watermark"]["appid"] == APPID


async def test_subscribe_send(wx: WeChatClient, emulator: Emulator) -> None:
    await emulator.post("/subscriptions", {"openid": "o_alice", "template_id": TEMPLATE, "count": 1})
    data = {"thing1": {"value": "满100减20"}, "time2": {"value": "2026-12-01 10:00"}}

    sent = await in_thread(lambda: wx.wxa.send_subscribe_message("o_alice", TEMPLATE, data, page="pages/wallet"))
    assert sent["errcode"] == 0 and sent["msgid"]
    assert [m["data"] for m in emulator.state.sent] == [data]
    with pytest.raises(WeChatClientException) as refused:
        await in_thread(lambda: wx.wxa.send_subscribe_message("o_alice", TEMPLATE, data))
    assert refused.value.errcode == 43101


async def test_unlimited_code(wx: WeChatClient) -> None:
    answer = await in_thread(lambda: wx.wxa.get_wxa_code_unlimited("c=123&s=9", width=300, page="pages/index"))
    # An image is not JSON: wechatpy hands back the response itself.
    assert isinstance(answer, requests.Response)
    assert answer.headers["Content-Type"].startswith("image/png")
    assert answer.content.startswith(PNG_MAGIC)


async def test_msg_sec_check_version_1(wx: WeChatClient) -> None:
    assert await in_thread(lambda: wx.wxa.check_text_security("hello")) == {"errcode": 0, "errmsg": "ok"}
    with pytest.raises(WeChatClientException) as risky:
        await in_thread(lambda: wx.wxa.check_text_security("this has a forbidden-word"))
    assert risky.value.errcode == 87014


async def test_expired_token_is_refreshed_and_the_call_retried(wx: WeChatClient, emulator: Emulator) -> None:
    await emulator.post("/subscriptions", {"openid": "o_alice", "template_id": TEMPLATE, "count": 2})
    data = {"thing1": {"value": "hi"}}
    await in_thread(lambda: wx.wxa.send_subscribe_message("o_alice", TEMPLATE, data))
    old = wx.access_token

    # WeChat expired the token while wechatpy still believes it valid: the call gets
    # 42001, wechatpy fetches a new token and repeats the call once.
    await emulator.post("/expire-tokens", {})
    await in_thread(lambda: wx.wxa.send_subscribe_message("o_alice", TEMPLATE, data))
    calls = await emulator.calls()
    assert calls["/cgi-bin/token"] == 2 and calls["/cgi-bin/message/subscribe/send"] == 3
    assert wx.access_token != old and len(emulator.state.sent) == 2

    # Near its own recorded expiry wechatpy refreshes before calling.
    wx.expires_at = int(time.time()) + 30
    assert await in_thread(lambda: wx.wxa.check_text_security("hello")) == {"errcode": 0, "errmsg": "ok"}
    assert (await emulator.calls())["/cgi-bin/token"] == 3


async def test_rate_limit_fault_reaches_wechatpy(wx: WeChatClient, emulator: Emulator) -> None:
    code = (await emulator.post("/login-code", {"openid": "o_alice"}))["code"]
    await emulator.post("/faults", {"path": "/sns/jscode2session", "errcode": 45011})
    with pytest.raises(WeChatClientException) as limited:
        await in_thread(lambda: wx.wxa.code_to_session(code))
    assert limited.value.errcode == 45011


@pytest.mark.parametrize(
    ("method", "path", "errcode"),
    [
        ("GET", "/cgi-bin/no_such_api", 40066),
        ("POST", "/wxa/not/here", 40066),
        ("GET", "/cgi-bin/stable_token", 43002),
        ("POST", "/cgi-bin/token", 43001),
    ],
)
async def test_unknown_paths_answer_in_wechat_shape(emulator: Emulator, method: str, path: str, errcode: int) -> None:
    async with emulator.http.request(method, emulator.base_url + path) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert set(body) == {"errcode", "errmsg"} and body["errcode"] == errcode


async def test_control_paths_keep_plain_http_errors(emulator: Emulator) -> None:
    async with emulator.http.get(emulator.base_url + "/login-code") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"


async def test_server_mounted_emulator_answers_unknown_paths_in_wechat_shape(
    client: TestClient, settings: Settings
) -> None:
    # Through the real server and its error middleware: WeChat's shape, not {"error": ...}.
    resp = await client.get("/_wechat/cgi-bin/no_such_api")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"errcode", "errmsg"} and body["errcode"] == 40066
    # And wechatpy works against the server's emulator URL.
    code = await login_code(client, "o_bob")
    wx = wechatpy_client(str(client.make_url("/_wechat")), settings.appid, settings.app_secret)
    assert (await in_thread(lambda: wx.wxa.code_to_session(code)))["openid"] == "o_bob"
