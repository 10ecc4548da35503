"""Local emulator of the WeChat mini-program server APIs, for tests and development.

Mount it as a sub-app (``app.add_subapp("/_wechat", create_emulator_app(...))``)
or run it alone with ``python -m miniprogram_api.emulator``. It must never be
reachable in production: that guard belongs to the server.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from .control_routes import add_control_routes
from .keys import STATE
from .state import DEFAULT_BANNED_WORDS, WECHAT_PATHS, EmulatorState
from .wechat_routes import add_wechat_fallback, add_wechat_routes

DEFAULT_TOKEN_OVERLAP_S = 300.0


def create_emulator_app(
    appid: str,
    secret: str,
    *,
    code_ttl: float = 300.0,
    token_ttl: int = 7200,
    token_overlap: float = DEFAULT_TOKEN_OVERLAP_S,
    banned_words: Iterable[str] = DEFAULT_BANNED_WORDS,
) -> web.Application:
    """Build a fresh emulator; all its state lives in ``app[STATE]``.

    ``code_ttl`` is how long login/phone codes stay valid, ``token_ttl`` the
    access tokens' lifetime, ``token_overlap`` how long a token keeps working
    after a force refresh replaced it, and ``banned_words`` what
    ``msg_sec_check`` calls risky.
    """
    app = web.Application()
    app[STATE] = EmulatorState(
        appid=appid,
        secret=secret,
        code_ttl=code_ttl,
        token_ttl=token_ttl,
        token_overlap=token_overlap,
        banned_words=tuple(banned_words),
    )
    add_wechat_routes(app)
    add_control_routes(app)
    # Last: unknown paths answer in WeChat's shape rather than the host server's.
    add_wechat_fallback(app)
    return app


__all__ = [
    "DEFAULT_BANNED_WORDS",
    "STATE",
    "WECHAT_PATHS",
    "EmulatorState",
    "create_emulator_app",
]
