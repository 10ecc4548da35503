"""Command line: `python -m server [serve|migrate|create-admin]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web

from server import logs
from server.settings import Settings, SettingsError


def _serve(settings: Settings) -> None:
    from server.app import create_app

    logs.configure(settings.log_level)
    app = create_app(settings)
    where = f"http://{settings.host}:{settings.port}"
    mode = (
        "WeChat emulator at " + settings.wechat_base_url
        if settings.emulator_enabled
        else "WeChat app " + settings.appid
    )
    print(f"wxcampaign listening on {where} (docs: {where}/api/docs; {mode})", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


async def _migrate(settings: Settings) -> None:
    from server.db import apply_migrations

    await apply_migrations(settings.database_url)
    print("migrations applied", flush=True)


async def _create_admin(settings: Settings, username: str, password: str, role: str) -> None:
    from server.db import apply_migrations, open_orm
    from services import accounts

    if settings.auto_migrate:
        await apply_migrations(settings.database_url)
    ctx = await open_orm(settings.database_url)
    try:
        admin = await accounts.create_admin(username, password, role)
    finally:
        await ctx.close_connections()
    print(f"created admin {admin.username!r} (id {admin.id}, role {admin.role})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="WeChat campaign backend")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (the default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    create = sub.add_parser("create-admin", help="create an admin account")
    create.add_argument("--username", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--role", required=True, choices=["operator", "reviewer", "approver", "superadmin"])
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from services.errors import AppError

    try:
        if args.command in (None, "serve"):
            _serve(settings)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "create-admin":
            asyncio.run(_create_admin(settings, args.username, args.password, args.role))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0
