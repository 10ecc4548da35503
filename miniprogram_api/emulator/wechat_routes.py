"""The emulated WeChat endpoints: same paths, shapes and errcodes as api.weixin.qq.com."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .errors import EmulatedError
from .faults import instrumented
from .keys import STATE
from .png import make_code_png
from .state import EmulatorState

_SCENE = re.compile(r"[0-9A-Za-z!#$&'()*+,/:;=?@\-._~]{0,32}")
_ENV_VERSIONS = ("release", "trial", "develop")

WeChatHandler = Callable[[web.Request, EmulatorState], Awaitable[web.StreamResponse]]


def _ok(body: dict[str, Any], content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        content_type=content_type,
        charset="utf-8",
    )


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise EmulatedError(47001) from None
    if not isinstance(body, dict):
        raise EmulatedError(47001)
    return body


def _errcode_answers(
    handler: WeChatHandler, content_type: str = "application/json"
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # WeChat reports failures as HTTP 200 + errcode, never as an HTTP status.
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, request.app[STATE])
        except EmulatedError as exc:
            return _ok(exc.body(), content_type)

    return wrapped


async def _with_token(request: web.Request, state: EmulatorState) -> dict[str, Any]:
    state.check_token(request.query.get("access_token"))
    return await _json_body(request)


async def jscode2session(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    query = request.query
    state.check_app(query.get("appid"), query.get("secret"))
    if query.get("grant_type") != "authorization_code":
        raise EmulatedError(40002)
    js_code = query.get("js_code")
    if not js_code:
        raise EmulatedError(41008)
    user = state.code2session(js_code)
    body: dict[str, Any] = {"openid": user.openid, "session_key": user.session_key}
    if user.unionid:
        body["unionid"] = user.unionid
    # The real endpoint labels its JSON text/plain; clients must parse the body anyway.
    return _ok(body, "text/plain")


async def stable_token(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    body = await _json_body(request)
    if body.get("grant_type") != "client_credential":
        raise EmulatedError(40002)
    state.check_app(body.get("appid"), body.get("secret"))
    token, expires_in = state.stable_token(body.get("force_refresh") is True)
    return _ok({"access_token": token, "expires_in": expires_in})


async def cgi_token(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    """The older ``GET /cgi-bin/token`` (wechatpy's only token flow): a new token per call."""
    query = request.query
    if query.get("grant_type") != "client_credential":
        raise EmulatedError(40002)
    state.check_app(query.get("appid"), query.get("secret"))
    access_token, expires_in = state.legacy_token()
    return _ok({"access_token": access_token, "expires_in": expires_in})


async def getuserphonenumber(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    body = await _with_token(request, state)
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise EmulatedError(41008)
    phone = state.redeem_phone_code(code)
    country = phone["country_code"]
    info = {
        "phoneNumber": phone["phone_number"],
        "purePhoneNumber": phone["pure_phone_number"],
        # WeChat's documented answer gives the country code as a number ("countryCode": 86).
        "countryCode": int(country) if country.isdigit() else country,
        "watermark": {"timestamp": int(time.time()), "appid": state.appid},
    }
    return _ok({"errcode": 0, "errmsg": "ok", "phone_info": info})


async def subscribe_send(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    state.send_subscribe_message(await _with_token(request, state))
    return _ok({"errcode": 0, "errmsg": "ok", "msgid": secrets.randbits(52)})


async def getwxacodeunlimit(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    body = await _with_token(request, state)
    scene = body.get("scene")
    if not isinstance(scene, str) or _SCENE.fullmatch(scene) is None:
        raise EmulatedError(40169)
    page = body.get("page", "")
    if not isinstance(page, str) or (body.get("check_path", True) and page.startswith("/")):
        raise EmulatedError(41030)
    if body.get("env_version", "release") not in _ENV_VERSIONS:
        raise EmulatedError(40097)
    width = body.get("width", 430)
    if not isinstance(width, int):
        raise EmulatedError(40097)
    # WeChat clamps the width rather than rejecting it.
    png = make_code_png(min(max(width, 280), 1280), f"{scene}|{page}")
    return web.Response(body=png, content_type="image/png")


async def msg_sec_check(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    body = await _with_token(request, state)
    content = body.get("content")
    if not isinstance(content, str):
        raise EmulatedError(40097)
    version = body.get("version", 1)
    if version == 1:
        # Version 1 (``{"content"}`` only, what wechatpy sends) has no verdict
        # object: risky content is the errcode 87014, anything else plain ok.
        if state.sec_check(content)[0] == "risky":
            raise EmulatedError(87014)
        return _ok({"errcode": 0, "errmsg": "ok"})
    if version != 2 or body.get("scene") not in (1, 2, 3, 4):
        raise EmulatedError(40097)
    openid = body.get("openid")
    if not isinstance(openid, str) or not openid:
        raise EmulatedError(40003)
    suggest, label = state.sec_check(content)
    detail = [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label, "prob": 90}]
    return _ok(
        {
            "errcode": 0,
            "errmsg": "ok",
            "result": {"suggest": suggest, "label": label},
            "detail": detail,
            "trace_id": secrets.token_hex(16),
        }
    )


async def getuserriskrank(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    body = await _with_token(request, state)
    rank = state.risk_rank(body)
    return _ok({"errcode": 0, "errmsg": "getuserriskrank succ", "risk_rank": rank, "unoin_id": secrets.randbits(31)})


_GETS: dict[str, tuple[WeChatHandler, str]] = {
    "/sns/jscode2session": (jscode2session, "text/plain"),
    "/cgi-bin/token": (cgi_token, "application/json"),
}
_POSTS: dict[str, WeChatHandler] = {
    "/cgi-bin/stable_token": stable_token,
    "/wxa/business/getuserphonenumber": getuserphonenumber,
    "/cgi-bin/message/subscribe/send": subscribe_send,
    "/wxa/getwxacodeunlimit": getwxacodeunlimit,
    "/wxa/msg_sec_check": msg_sec_check,
    "/wxa/getuserriskrank": getuserriskrank,
}


def add_wechat_routes(app: web.Application) -> None:
    """Register the WeChat endpoints on ``app`` with paths relative to its root."""
    router = app.router
    for path, (handler, content_type) in _GETS.items():
        router.add_get(path, instrumented(path, _errcode_answers(handler, content_type)))
    for path, post in _POSTS.items():
        router.add_post(path, instrumented(path, _errcode_answers(post)))


def add_wechat_fallback(app: web.Application) -> None:
    """Answer every other path and method the way WeChat does: HTTP 200 with an errcode.

    Register it after every other route of ``app`` (aiohttp tries routes in order).
    The emulator's own control paths keep plain HTTP errors (405 for a wrong method).
    """
    control: dict[str, set[str]] = {}
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical not in _GETS and canonical not in _POSTS:
            control.setdefault(canonical, set()).add(route.method)

    async def fallback(request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        if path in control:
            raise web.HTTPMethodNotAllowed(request.method, sorted(control[path]))
        if path in _GETS:
            errcode = 43001  # require GET method
        elif path in _POSTS:
            errcode = 43002  # require POST method
        else:
            errcode = 40066  # invalid url
        return _ok(EmulatedError(errcode).body())

    app.router.add_route("*", "/{tail:.*}", fallback)
