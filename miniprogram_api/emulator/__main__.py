"""Run the emulator alone: ``python -m miniprogram_api.emulator --port 8780``."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from . import create_emulator_app

DEFAULT_APPID = "wx00000000emulator"
DEFAULT_SECRET = "emulator-secret"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m miniprogram_api.emulator",
        description="Local emulator of the WeChat mini-program server APIs (tests only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--appid", default=DEFAULT_APPID)
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    parser.add_argument("--code-ttl", type=float, default=300.0, help="login/phone code lifetime (s)")
    parser.add_argument("--token-ttl", type=int, default=7200, help="access token lifetime (s)")
    args = parser.parse_args(argv)
    print(
        f"WARNING: this is the WeChat API EMULATOR, not api.weixin.qq.com "
        f"(appid {args.appid}): fake users, codes and tokens for tests and local "
        f"development only. Never point a production server at it.",
        file=sys.stderr,
        flush=True,
    )
    app = create_emulator_app(args.appid, args.secret, code_ttl=args.code_ttl, token_ttl=args.token_ttl)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
