"""Async client for the WeChat mini-program server APIs this project uses.

Runs on aiohttp; wechatpy's client is synchronous and must not be used on the
event loop (wechatpy is only for crypto). Wire formats: /work/shared/wechat-api.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from ._transport import CallHooks, Reply, Transport, require_str
from .errors import AccessTokenInvalid, WeChatUnavailable
from .results import Code2SessionResult, PhoneInfo, SecCheckResult
from .token_cache import AccessTokenCache

PRODUCTION_BASE_URL = "https://api.weixin.qq.com"
SUBSCRIBE_SEND_PATH = "/cgi-bin/message/subscribe/send"


class MiniProgramClient:
    """Calls WeChat on behalf of one mini program (one appid).

    Preconditions: ``session`` is open and closed by the caller; ``redis`` is
    the instance every server process shares (the access token and its
    refresh lock live there); ``base_url`` has no query string (a trailing
    slash is fine).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        redis: aioredis.Redis | aioredis.RedisCluster,
        appid: str,
        secret: str,
        base_url: str,
        timeout: float = 5.0,
        max_retries: int = 2,
        backoff: float = 0.2,
        token_key_prefix: str = "wechat",
        hooks: CallHooks | None = None,
    ) -> None:
        self._appid = appid
        self._secret = secret
        self._http = Transport(
            session=session,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            hooks=hooks,
        )
        # A refresh must finish well inside the lock's lifetime, and waiters
        # should not give up before a healthy refresh could have finished.
        bound = self._http.worst_case_seconds + 1.0
        self._tokens = AccessTokenCache(
            redis=redis,
            key=f"{token_key_prefix}:access_token:{appid}",
            lock_key=f"{token_key_prefix}:access_token_lock:{appid}",
            fetch=self._fetch_access_token,
            lock_ttl_s=bound,
            wait_s=bound,
        )

    def __repr__(self) -> str:
        # The default repr would not show the secret, but say so explicitly.
        return f"MiniProgramClient(appid={self._appid!r})"

    @property
    def appid(self) -> str:
        """The mini program's appid."""
        return self._appid

    async def code2session(self, js_code: str) -> Code2SessionResult:
        """Exchange a ``wx.login`` code for the user's openid and session_key.

        The code is single-use: ``CodeUsed`` on a second exchange,
        ``InvalidCode`` when unknown or expired.
        """
        path = "/sns/jscode2session"
        reply = await self._http.request(
            "GET",
            path,
            params={
                "appid": self._appid,
                "secret": self._secret,
                "js_code": js_code,
                "grant_type": "authorization_code",
            },
        )
        payload = _json(reply, path)
        unionid = payload.get("unionid")
        return Code2SessionResult(
            openid=require_str(payload, "openid", path),
            session_key=require_str(payload, "session_key", path),
            unionid=unionid if isinstance(unionid, str) and unionid else None,
        )

    async def get_access_token(self, force_refresh: bool = False) -> str:
        """Return the app's access token from the shared cache, fetching if needed.

        ``force_refresh`` asks WeChat for a new token (rationed by WeChat: use
        it only after a 40001/42001); if another process refreshed meanwhile,
        its token is returned instead of refreshing twice.
        """
        if not force_refresh:
            return await self._tokens.get()
        return await self._tokens.refresh(stale=await self._tokens.current())

    async def get_phone_number(self, code: str) -> PhoneInfo:
        """Exchange a phone-number button code for the user's phone number."""
        path = "/wxa/business/getuserphonenumber"
        payload = _json(await self._with_token(path, {"code": code}), path)
        info = payload.get("phone_info")
        if not isinstance(info, dict):
            raise WeChatUnavailable(path, 1, "malformed answer: missing phone_info")
        watermark = info.get("watermark")
        if not isinstance(watermark, dict):
            raise WeChatUnavailable(path, 1, "malformed answer: missing watermark")
        timestamp = watermark.get("timestamp")
        return PhoneInfo(
            phone_number=require_str(info, "phoneNumber", path),
            pure_phone_number=require_str(info, "purePhoneNumber", path),
            country_code=_country_code(info, path),
            watermark_appid=require_str(watermark, "appid", path),
            watermark_timestamp=timestamp if isinstance(timestamp, int) else 0,
        )

    async def send_subscribe_message(
        self,
        touser: str,
        template_id: str,
        data: Mapping[str, Mapping[str, str]],
        page: str | None = None,
        miniprogram_state: str = "formal",
        lang: str = "zh_CN",
        retry: bool = True,
    ) -> str | None:
        """Send a one-time subscribe message; WeChat's ``msgid`` if it gave one.

        ``data`` has WeChat's shape: ``{"thing1": {"value": "..."}, ...}``. The
        user must hold an unused acceptance of ``template_id``
        (``NotSubscribed`` otherwise). Note a transport-level retry can, in
        the rare case the first attempt was delivered, send twice: with
        ``retry=False`` the message is posted once (a refused access token is
        still refreshed and the post repeated, since WeChat refused the first),
        and the caller decides about retries.
        """
        body: dict[str, Any] = {
            "touser": touser,
            "template_id": template_id,
            "data": {key: dict(field) for key, field in data.items()},
            "miniprogram_state": miniprogram_state,
            "lang": lang,
        }
        if page is not None:
            body["page"] = page
        path = SUBSCRIBE_SEND_PATH
        reply = await self._with_token(path, body, max_retries=None if retry else 0)
        msgid = (reply.payload or {}).get("msgid")
        return str(msgid) if isinstance(msgid, int | str) and msgid != "" else None

    async def get_unlimited_code(
        self,
        scene: str,
        page: str,
        width: int = 430,
        check_path: bool = True,
        env_version: str = "release",
    ) -> tuple[bytes, str]:
        """Return ``(image bytes, content type)`` of a mini-program code.

        ``scene`` is at most 32 visible characters; WeChat rejects longer ones.
        """
        path = "/wxa/getwxacodeunlimit"
        reply = await self._with_token(
            path,
            {
                "scene": scene,
                "page": page,
                "width": width,
                "check_path": check_path,
                "env_version": env_version,
            },
            binary_ok=True,
        )
        if reply.payload is not None:
            raise WeChatUnavailable(path, 1, "malformed answer: JSON instead of an image")
        return reply.body, reply.content_type

    async def msg_sec_check(self, content: str, openid: str, scene: int = 1) -> SecCheckResult:
        """Check text for prohibited content (version 2 of the API).

        ``openid`` must be a user who used the mini program recently;
        ``scene`` is 1 profile, 2 comment, 3 forum, 4 social log.
        """
        path = "/wxa/msg_sec_check"
        body = {"content": content, "version": 2, "scene": scene, "openid": openid}
        payload = _json(await self._with_token(path, body), path)
        result = payload.get("result")
        if not isinstance(result, dict):
            raise WeChatUnavailable(path, 1, "malformed answer: missing result")
        label = result.get("label")
        return SecCheckResult(
            suggest=require_str(result, "suggest", path),
            label=label if isinstance(label, int) else 0,
        )

    async def get_user_risk_rank(self, openid: str, *, client_ip: str, scene: int = 1) -> int:
        """WeChat's risk rank of a user, 0 (none) to 4 (highest).

        ``scene`` is 0 for registration, 1 for marketing activities (fraud such as
        bonus hunting); ``client_ip`` is the user's address as this server saw it.
        ``NoRecentVisit`` (61010) when the user has not used the mini program in
        the last two hours.
        """
        path = "/wxa/getuserriskrank"
        body = {"appid": self._appid, "openid": openid, "scene": scene, "client_ip": client_ip}
        payload = _json(await self._with_token(path, body), path)
        rank = payload.get("risk_rank")
        # bool is an int subclass, and never a rank.
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise WeChatUnavailable(path, 1, "malformed answer: missing risk_rank")
        return rank

    async def _fetch_access_token(self, force_refresh: bool) -> tuple[str, int]:
        path = "/cgi-bin/stable_token"
        reply = await self._http.request(
            "POST",
            path,
            json_body={
                "grant_type": "client_credential",
                "appid": self._appid,
                "secret": self._secret,
                "force_refresh": force_refresh,
            },
        )
        payload = _json(reply, path)
        expires_in = payload.get("expires_in")
        if not isinstance(expires_in, int):
            raise WeChatUnavailable(path, 1, "malformed answer: missing expires_in")
        return require_str(payload, "access_token", path), expires_in

    async def _with_token(
        self, path: str, body: Mapping[str, Any], *, binary_ok: bool = False, max_retries: int | None = None
    ) -> Reply:
        """POST with the access token; on 40001/42001 refresh once and retry once."""
        token = await self._tokens.get()
        try:
            return await self._http.request(
                "POST", path, params={"access_token": token}, json_body=body, binary_ok=binary_ok,
                max_retries=max_retries,
            )  # fmt: skip
        except AccessTokenInvalid:
            token = await self._tokens.refresh(stale=token)
        return await self._http.request(
            "POST", path, params={"access_token": token}, json_body=body, binary_ok=binary_ok, max_retries=max_retries
        )


def _country_code(info: Mapping[str, Any], path: str) -> str:
    """``countryCode`` as a string: WeChat documents it as a number (``86``), and
    answers have been seen with a string (``"86"``); both are accepted."""
    value = info.get("countryCode")
    # bool is an int subclass, and never a country code.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return require_str(info, "countryCode", path)


def _json(reply: Reply, path: str) -> dict[str, Any]:
    if reply.payload is None:
        raise WeChatUnavailable(path, 1, "malformed answer: expected JSON")
    return reply.payload
