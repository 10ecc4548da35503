"""Exceptions raised by the mini-program client.

WeChat answers failures with HTTP 200 and a non-zero ``errcode``; each code the
project handles on purpose gets its own subclass so callers can ``except`` it.
Messages carry only the errcode, WeChat's errmsg and the API path, never a
secret, session_key or access token.
"""

from __future__ import annotations

from typing import ClassVar


class WeChatError(Exception):
    """WeChat answered with a non-zero ``errcode``."""

    #: The errcodes this class stands for (empty for the catch-all base class).
    codes: ClassVar[tuple[int, ...]] = ()

    def __init__(self, errcode: int, errmsg: str) -> None:
        # Pass both to Exception so pickling/copying rebuilds the same object.
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg

    def __str__(self) -> str:
        return f"WeChat errcode {self.errcode}: {self.errmsg}"


class InvalidCode(WeChatError):
    """The login/phone code is unknown or expired."""

    codes = (40029,)


class CodeUsed(WeChatError):
    """The code was already exchanged once (codes are single-use)."""

    codes = (40163,)


class RateLimited(WeChatError):
    """Per-user or per-app frequency limit reached."""

    codes = (45011,)


class RiskyUser(WeChatError):
    """WeChat blocked a high-risk user from logging in."""

    codes = (40226,)


class NoRecentVisit(WeChatError):
    """``getuserriskrank``: the user has not used the mini program in the last two
    hours, so WeChat has no access record to rank (61010)."""

    codes = (61010,)


class SystemBusy(WeChatError):
    """WeChat kept answering ``-1`` (system busy) after all retries."""

    codes = (-1,)


class AccessTokenInvalid(WeChatError):
    """The access token is invalid (40001) or expired (42001)."""

    codes = (40001, 42001)


class NotSubscribed(WeChatError):
    """The user has no remaining acceptance for this subscribe template."""

    codes = (43101,)


class TemplateDataInvalid(WeChatError):
    """Subscribe message data violates the template's field rules."""

    codes = (47003,)


class InvalidOpenid(WeChatError):
    """The openid does not belong to this mini program."""

    codes = (40003,)


class InvalidTemplateId(WeChatError):
    """The subscribe template id is not valid for this mini program."""

    codes = (40037,)


_BY_CODE: dict[int, type[WeChatError]] = {
    code: cls
    for cls in (
        InvalidCode,
        CodeUsed,
        RateLimited,
        RiskyUser,
        NoRecentVisit,
        SystemBusy,
        AccessTokenInvalid,
        NotSubscribed,
        TemplateDataInvalid,
        InvalidOpenid,
        InvalidTemplateId,
    )
    for code in cls.codes
}


def error_for(errcode: int, errmsg: str) -> WeChatError:
    """Return the typed exception for ``errcode`` (plain ``WeChatError`` if unknown)."""
    return _BY_CODE.get(errcode, WeChatError)(errcode, errmsg)


class WeChatUnavailable(Exception):
    """WeChat could not be reached or answered garbage, after all retries.

    ``reason`` names the last failure (an exception class name or
    ``"non-JSON body"``); it never contains the request URL, which may hold a
    secret or an access token in its query string. ``reached`` is False only when
    the last attempt certainly did not reach WeChat (no connection was made): a
    timeout or a dropped connection may have been processed.
    """

    def __init__(self, path: str, attempts: int, reason: str, *, reached: bool = True) -> None:
        super().__init__(path, attempts, reason)
        self.path = path
        self.attempts = attempts
        self.reason = reason
        self.reached = reached

    def __str__(self) -> str:
        return f"WeChat {self.path} unavailable after {self.attempts} attempt(s): {self.reason}"
