"""Typed results of the mini-program client's calls."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Code2SessionResult:
    """Outcome of ``code2session``.

    ``session_key`` is kept out of ``repr`` so that logging the result cannot
    leak it; it must never leave the server.
    """

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """A user's phone number as returned by ``getuserphonenumber``."""

    phone_number: str
    pure_phone_number: str
    country_code: str
    watermark_appid: str
    watermark_timestamp: int


@dataclass(frozen=True, slots=True)
class SecCheckResult:
    """Verdict of ``msg_sec_check``: ``suggest`` is ``pass``, ``review`` or ``risky``."""

    suggest: str
    label: int
