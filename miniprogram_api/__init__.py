"""WeChat mini-program server API: async client, typed errors and a local emulator.

The emulator lives in ``miniprogram_api.emulator`` and is imported explicitly
(it is test/dev tooling, not something production code should pull in).
"""

from ._transport import CallHooks
from .client import PRODUCTION_BASE_URL, SUBSCRIBE_SEND_PATH, MiniProgramClient
from .errors import (
    AccessTokenInvalid,
    CodeUsed,
    InvalidCode,
    InvalidOpenid,
    InvalidTemplateId,
    NoRecentVisit,
    NotSubscribed,
    RateLimited,
    RiskyUser,
    SystemBusy,
    TemplateDataInvalid,
    WeChatError,
    WeChatUnavailable,
    error_for,
)
from .results import Code2SessionResult, PhoneInfo, SecCheckResult

__all__ = [
    "PRODUCTION_BASE_URL",
    "SUBSCRIBE_SEND_PATH",
    "AccessTokenInvalid",
    "CallHooks",
    "Code2SessionResult",
    "CodeUsed",
    "InvalidCode",
    "InvalidOpenid",
    "InvalidTemplateId",
    "MiniProgramClient",
    "NoRecentVisit",
    "NotSubscribed",
    "PhoneInfo",
    "RateLimited",
    "RiskyUser",
    "SecCheckResult",
    "SystemBusy",
    "TemplateDataInvalid",
    "WeChatError",
    "WeChatUnavailable",
    "error_for",
]
