"""WeChat errcodes the emulator answers with, and the exception carrying them."""

from __future__ import annotations

import secrets

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40066: "invalid url",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    40169: "invalid length for scene, or the data is not json string",
    40226: "high risk level user, login blocked",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
    61010: "user access record expired: the user has not visited the mini program in the last 2 hours",
    87014: "risky content",
}


def errmsg_for(errcode: int, detail: str = "") -> str:
    """WeChat-style errmsg: text, optional detail, and a request id like the real one."""
    text = ERRMSG.get(errcode, "emulated error")
    if detail:
        text = f"{text}: {detail}"
    return f"{text}, rid: {secrets.token_hex(12)}"


class EmulatedError(Exception):
    """Raised by the emulator's state to answer a WeChat call with an errcode."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        super().__init__(errcode, detail)
        self.errcode = errcode
        self.detail = detail

    def body(self) -> dict[str, object]:
        return {"errcode": self.errcode, "errmsg": errmsg_for(self.errcode, self.detail)}
