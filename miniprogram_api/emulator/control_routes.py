"""Test-control endpoints: play the mini program's side and steer the emulator.

These have no WeChat equivalent. They answer plain HTTP errors (400/409) since
only tests and developers call them.
"""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .crypto import encrypt_user_data, raw_data_signature
from .keys import STATE
from .state import WECHAT_PATHS, Fault

_Model = TypeVar("_Model", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginCodeIn(_Body):
    openid: str = Field(min_length=1)
    unionid: str | None = None


class PhoneCodeIn(_Body):
    openid: str | None = None
    phone_number: str | None = None
    pure_phone_number: str | None = None
    country_code: str | None = None

    @model_validator(mode="after")
    def _some_number(self) -> PhoneCodeIn:
        if not (self.phone_number or self.pure_phone_number):
            raise ValueError("give phone_number or pure_phone_number")
        return self

    def derived(self) -> dict[str, str]:
        """Fill the missing parts: "+86 13800138000" gives country 86, pure 13800138000."""
        full = (self.phone_number or "").strip()
        country = self.country_code
        rest = full
        if full.startswith("+"):
            head, _, tail = full[1:].partition(" ")
            if tail:
                country = country or head
                rest = tail
            elif country and head.startswith(country):
                rest = head[len(country) :]
        country = country or "86"
        pure = self.pure_phone_number or "".join(ch for ch in rest if ch.isdigit())
        return {
            "phone_number": full or pure,
            "pure_phone_number": pure,
            "country_code": country,
        }


class EncryptIn(_Body):
    openid: str = Field(min_length=1)
    data: dict[str, Any]
    watermark_appid: str | None = None


class SubscriptionIn(_Body):
    openid: str = Field(min_length=1)
    template_id: str = Field(min_length=1)
    count: int = Field(default=1, ge=1)


class RiskRankIn(_Body):
    openid: str = Field(min_length=1)
    rank: int = Field(ge=0, le=4)


class FaultIn(_Body):
    path: str
    times: int = Field(default=1, ge=1)
    errcode: int | None = None
    errmsg: str | None = None
    delay: float = Field(default=0.0, ge=0.0)
    drop: bool = False
    garbage: bool = False

    @model_validator(mode="after")
    def _known_path_and_effect(self) -> FaultIn:
        if self.path not in WECHAT_PATHS:
            raise ValueError(f"path must be one of {', '.join(WECHAT_PATHS)}")
        if self.errcode is None and not self.delay and not self.drop and not self.garbage:
            raise ValueError("give errcode, delay, drop or garbage")
        return self


async def _parse(request: web.Request, model: type[_Model]) -> _Model:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid body", "detail": exc.errors(include_url=False)}, default=str),
            content_type="application/json",
        ) from None


async def login_code(request: web.Request) -> web.Response:
    body = await _parse(request, LoginCodeIn)
    return web.json_response({"code": request.app[STATE].issue_login_code(body.openid, body.unionid)})


async def phone_code(request: web.Request) -> web.Response:
    body = await _parse(request, PhoneCodeIn)
    return web.json_response({"code": request.app[STATE].issue_phone_code(body.openid, body.derived())})


async def encrypted_data(request: web.Request) -> web.Response:
    """What ``wx.getUserInfo`` hands the mini program, for the openid's latest login."""
    body = await _parse(request, EncryptIn)
    state = request.app[STATE]
    user = state.users.get(body.openid)
    if user is None or user.session_key is None:
        raise web.HTTPConflict(
            text=json.dumps({"error": "openid has no session_key: redeem a login code first"}),
            content_type="application/json",
        )
    watermark = {"timestamp": int(time.time()), "appid": body.watermark_appid or state.appid}
    encrypted, iv = encrypt_user_data(user.session_key, {**body.data, "watermark": watermark})
    raw_data = json.dumps(body.data, ensure_ascii=False, separators=(",", ":"))
    return web.json_response(
        {
            "encrypted_data": encrypted,
            "iv": iv,
            "raw_data": raw_data,
            "signature": raw_data_signature(raw_data, user.session_key),
        }
    )


async def add_subscription(request: web.Request) -> web.Response:
    body = await _parse(request, SubscriptionIn)
    remaining = request.app[STATE].subscribe(body.openid, body.template_id, body.count)
    return web.json_response({"openid": body.openid, "template_id": body.template_id, "remaining": remaining})


async def list_subscriptions(request: web.Request) -> web.Response:
    openid = request.query.get("openid")
    rows = [
        {"openid": who, "template_id": template_id, "remaining": remaining}
        for (who, template_id), remaining in request.app[STATE].allowances.items()
        if openid is None or who == openid
    ]
    return web.json_response(rows)


async def sent_messages(request: web.Request) -> web.Response:
    openid = request.query.get("openid")
    sent = request.app[STATE].sent
    return web.json_response([m for m in sent if openid is None or m["touser"] == openid])


async def set_risk_rank(request: web.Request) -> web.Response:
    """The rank ``getuserriskrank`` answers for an openid from now on."""
    body = await _parse(request, RiskRankIn)
    request.app[STATE].set_risk_rank(body.openid, body.rank)
    return web.json_response({"openid": body.openid, "rank": body.rank})


async def add_fault(request: web.Request) -> web.Response:
    body = await _parse(request, FaultIn)
    fault = Fault(
        times=body.times,
        errcode=body.errcode,
        errmsg=body.errmsg,
        delay=body.delay,
        drop=body.drop,
        garbage=body.garbage,
    )
    pending = request.app[STATE].add_fault(body.path, fault)
    return web.json_response({"path": body.path, "pending": pending})


async def clear_faults(request: web.Request) -> web.Response:
    return web.json_response({"cleared": request.app[STATE].clear_faults()})


async def expire_tokens(request: web.Request) -> web.Response:
    return web.json_response({"expired": request.app[STATE].expire_tokens()})


async def get_calls(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[STATE].calls))


async def reset_calls(request: web.Request) -> web.Response:
    request.app[STATE].calls.clear()
    return web.json_response({})


def add_control_routes(app: web.Application) -> None:
    """Register the test-control endpoints on ``app`` with relative paths."""
    router = app.router
    router.add_post("/login-code", login_code)
    router.add_post("/phone-code", phone_code)
    router.add_post("/encrypted-data", encrypted_data)
    router.add_post("/subscriptions", add_subscription)
    router.add_get("/subscriptions", list_subscriptions)
    router.add_get("/sent-messages", sent_messages)
    router.add_post("/risk-rank", set_risk_rank)
    router.add_post("/faults", add_fault)
    router.add_delete("/faults", clear_faults)
    router.add_post("/expire-tokens", expire_tokens)
    router.add_get("/calls", get_calls)
    router.add_delete("/calls", reset_calls)
