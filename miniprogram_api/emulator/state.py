"""All of one emulator instance's memory, and the WeChat rules applied to it.

No aiohttp here: routes translate HTTP to these calls, which raise
``EmulatedError`` where WeChat would answer with an errcode.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import EmulatedError
from .validation import template_data_error

WECHAT_PATHS = (
    "/sns/jscode2session",
    "/cgi-bin/token",
    "/cgi-bin/stable_token",
    "/wxa/business/getuserphonenumber",
    "/cgi-bin/message/subscribe/send",
    "/wxa/getwxacodeunlimit",
    "/wxa/msg_sec_check",
    "/wxa/getuserriskrank",
)
#: How long after a login WeChat still holds a user's access record for risk ranking.
RISK_RECORD_SECONDS = 2 * 3600.0
DEFAULT_BANNED_WORDS = ("违禁", "forbidden-word")
RISKY_LABEL = 20001
PASS_LABEL = 100


@dataclass
class User:
    """A mini-program user: the same openid is the same user on every login."""

    openid: str
    unionid: str | None = None
    session_key: str | None = None


@dataclass
class OneTimeCode:
    """A login or phone code: valid until ``expires_at`` (monotonic) and used once."""

    openid: str | None
    expires_at: float
    used: bool = False
    phone: dict[str, str] | None = None


@dataclass
class Fault:
    """What to do instead of (or before) answering the next ``times`` calls of a path."""

    times: int
    errcode: int | None = None
    errmsg: str | None = None
    delay: float = 0.0
    drop: bool = False
    garbage: bool = False


@dataclass
class EmulatorState:
    """State of one emulator; ``clock`` is monotonic seconds (injectable for tests)."""

    appid: str
    secret: str
    code_ttl: float
    token_ttl: int
    token_overlap: float
    banned_words: tuple[str, ...]
    clock: Callable[[], float] = time.monotonic
    users: dict[str, User] = field(default_factory=dict)
    codes: dict[str, OneTimeCode] = field(default_factory=dict)
    phone_codes: dict[str, OneTimeCode] = field(default_factory=dict)
    token_expiry: dict[str, float] = field(default_factory=dict)
    current_token: str | None = None
    current_legacy_token: str | None = None
    allowances: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    #: Risk rank per openid set by tests (0 when unset), and when each user last logged in.
    risk_ranks: dict[str, int] = field(default_factory=dict)
    last_login: dict[str, float] = field(default_factory=dict)

    # -- users and login -------------------------------------------------

    def user(self, openid: str) -> User:
        return self.users.setdefault(openid, User(openid))

    def issue_login_code(self, openid: str, unionid: str | None) -> str:
        user = self.user(openid)
        if unionid:
            user.unionid = unionid
        code = secrets.token_urlsafe(24)
        self.codes[code] = OneTimeCode(openid, self.clock() + self.code_ttl)
        return code

    def check_app(self, appid: object, secret: object) -> None:
        if appid != self.appid:
            raise EmulatedError(40013)
        if secret != self.secret:
            raise EmulatedError(40125)

    def code2session(self, code: str) -> User:
        """Redeem a login code; every login gets a fresh session_key."""
        openid = self._redeem(self.codes, code).openid
        assert openid is not None
        user = self.user(openid)
        user.session_key = base64.b64encode(os.urandom(16)).decode()
        self.last_login[openid] = self.clock()
        return user

    def risk_rank(self, body: dict[str, Any]) -> int:
        """``getuserriskrank``: the rank a test set for the openid (0 by default).

        WeChat ranks only users with an access record of the last two hours (61010
        otherwise); here a record is a login (``code2session``) within that time.
        """
        if body.get("appid") != self.appid:
            raise EmulatedError(40013)
        openid = body.get("openid")
        if not isinstance(openid, str) or not openid:
            raise EmulatedError(40003)
        if body.get("scene") not in (0, 1) or not isinstance(body.get("client_ip"), str) or not body["client_ip"]:
            raise EmulatedError(40097)
        seen = self.last_login.get(openid)
        if seen is None or self.clock() - seen > RISK_RECORD_SECONDS:
            raise EmulatedError(61010)
        return self.risk_ranks.get(openid, 0)

    def set_risk_rank(self, openid: str, rank: int) -> None:
        self.risk_ranks[openid] = rank

    def _redeem(self, codes: dict[str, OneTimeCode], code: str) -> OneTimeCode:
        issued = codes.get(code)
        if issued is None:
            raise EmulatedError(40029)
        if issued.used:
            raise EmulatedError(40163)
        if issued.expires_at <= self.clock():
            raise EmulatedError(40029)
        issued.used = True
        return issued

    # -- phone numbers -----------------------------------------------------

    def issue_phone_code(self, openid: str | None, phone: dict[str, str]) -> str:
        if openid:
            self.user(openid)
        code = secrets.token_urlsafe(24)
        self.phone_codes[code] = OneTimeCode(openid, self.clock() + self.code_ttl, phone=phone)
        return code

    def redeem_phone_code(self, code: str) -> dict[str, str]:
        phone = self._redeem(self.phone_codes, code).phone
        assert phone is not None
        return phone

    # -- access tokens -----------------------------------------------------

    def stable_token(self, force_refresh: bool) -> tuple[str, int]:
        """Return ``(token, expires_in)``: the same token until near its expiry, unless forced."""
        now = self.clock()
        current = self.current_token
        if current is not None and not force_refresh:
            remaining = self.token_expiry[current] - now
            # Like WeChat, rotate shortly before expiry; the old token keeps
            # its remaining life, so both work during the overlap.
            if remaining > min(self.token_overlap, self.token_ttl / 2):
                return current, max(int(remaining), 1)
        if current is not None:
            # Requests already in flight with the old token keep working a while.
            self.token_expiry[current] = min(self.token_expiry[current], now + self.token_overlap)
        token = secrets.token_urlsafe(48)
        self.token_expiry[token] = now + self.token_ttl
        self.current_token = token
        return token, self.token_ttl

    def legacy_token(self) -> tuple[str, int]:
        """``GET /cgi-bin/token``: a new token on every call, ``(token, expires_in)``.

        Unlike ``stable_token`` each call replaces the previous token of this
        flow, which keeps working only for the overlap (WeChat's 5 minutes). The
        two flows' tokens are independent of each other, as on WeChat.
        """
        now = self.clock()
        previous = self.current_legacy_token
        if previous is not None:
            self.token_expiry[previous] = min(self.token_expiry[previous], now + self.token_overlap)
        token = secrets.token_urlsafe(48)
        self.token_expiry[token] = now + self.token_ttl
        self.current_legacy_token = token
        return token, self.token_ttl

    def check_token(self, token: str | None) -> None:
        expiry = self.token_expiry.get(token) if token else None
        if expiry is None:
            raise EmulatedError(40001)
        if expiry <= self.clock():
            raise EmulatedError(42001)

    def expire_tokens(self) -> int:
        now = self.clock()
        for token in self.token_expiry:
            self.token_expiry[token] = min(self.token_expiry[token], now)
        return len(self.token_expiry)

    # -- subscribe messages --------------------------------------------------

    def subscribe(self, openid: str, template_id: str, count: int) -> int:
        self.user(openid)
        self.allowances[(openid, template_id)] += count
        return self.allowances[(openid, template_id)]

    def send_subscribe_message(self, body: dict[str, Any]) -> None:
        """Validate and record one message, consuming one acceptance."""
        touser = body.get("touser")
        template_id = body.get("template_id")
        if not isinstance(touser, str) or touser not in self.users:
            raise EmulatedError(40003)
        if not isinstance(template_id, str) or not template_id:
            raise EmulatedError(40037)
        if self.allowances[(touser, template_id)] <= 0:
            raise EmulatedError(43101)
        problem = template_data_error(body.get("data"))
        if problem is not None:
            raise EmulatedError(47003, problem)
        self.allowances[(touser, template_id)] -= 1
        self.sent.append(
            {
                "touser": touser,
                "template_id": template_id,
                "page": body.get("page"),
                "data": body.get("data"),
                "miniprogram_state": body.get("miniprogram_state", "formal"),
                "lang": body.get("lang", "zh_CN"),
                "sent_at": time.time(),
            }
        )

    # -- content security ------------------------------------------------------

    def sec_check(self, content: str) -> tuple[str, int]:
        if any(word in content for word in self.banned_words):
            return "risky", RISKY_LABEL
        return "pass", PASS_LABEL

    # -- faults and call counting -------------------------------------------------

    def add_fault(self, path: str, fault: Fault) -> int:
        queue = self.faults.setdefault(path, deque())
        queue.append(fault)
        return sum(f.times for f in queue)

    def take_fault(self, path: str) -> Fault | None:
        """Return the fault to apply to this call of ``path``, using up one of its times."""
        queue = self.faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    def clear_faults(self) -> int:
        cleared = sum(f.times for queue in self.faults.values() for f in queue)
        self.faults.clear()
        return cleared
