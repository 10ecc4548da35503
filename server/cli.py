"""Command line: `python -m server [serve|migrate|create-admin|worker|reconcile-stock|settings-table]`."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from server import logs
from server.event_loop import freeze_heap, loop_factory
from server.settings import Settings, SettingsError
from server.settings_table import settings_table, with_table

if TYPE_CHECKING:
    from services.core import AnyRedis


#: Errors of binding the listening socket: a one-line message, not a traceback.
_CANNOT_BIND = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _serve(settings: Settings, *, child: bool = False) -> None:
    """Serve in this process; ``child``: one of ``--workers N`` (the port is shared with
    SO_REUSEPORT, and the parent has done the once-per-machine work)."""
    from server.app import create_app
    from server.keys import DATABASE, REDIS_STATE

    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    if settings.gc_freeze:
        app.on_startup.append(_freeze_heap)  # after every cleanup_ctx's start-up (aiohttp runs those first)
    where = f"http://{settings.host}:{settings.port}"
    mode = (
        "WeChat emulator at " + settings.wechat_base_url
        if settings.emulator_enabled
        else "WeChat app " + settings.appid
    )
    new_loop, loop_name = loop_factory(settings.uvloop)

    def listening(_: str) -> None:
        # aiohttp calls this once the socket is bound: a taken port never claims to listen.
        worker = f"; worker pid {os.getpid()}" if child else ""
        console = (
            f"console: {where}/admin/, till: {where}/staff/"
            if (settings.console_dir / "staff" / "index.html").is_file()
            else "console not built (./scripts/serve builds it with Node 20 and npm)"
        )
        print(
            f"wxcampaign listening on {where} (docs: {where}/api/docs; {console}; {mode}; event loop: {loop_name}"
            f"{worker})",
            flush=True,
        )
        waiting = [state.name for state in (app[DATABASE], app[REDIS_STATE]) if not state.is_ready]
        if waiting:
            # Said once (the log has the reason and each retry): listening is not ready.
            print(f"not ready: {' and '.join(waiting)} unreachable; retrying, /readyz answers 503", flush=True)

    try:
        web.run_app(
            app, host=settings.host, port=settings.port, print=listening, access_log=None, loop=new_loop(),
            reuse_port=child or None,
        )  # fmt: skip
    except OSError as exc:
        if exc.errno not in _CANNOT_BIND:
            raise
        # The app started and stopped cleanly (its cleanup ran: the embedded Redis too).
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(1) from None


async def _freeze_heap(_: web.Application) -> None:
    frozen = freeze_heap()
    logging.getLogger("wxcampaign.server").info("%d objects of start-up frozen out of garbage collection", frozen)


async def _migrate(settings: Settings) -> None:
    from server.db import apply_migrations

    await apply_migrations(settings.database_url)
    print("migrations applied", flush=True)


#: Where create-admin reads the password when no terminal can be asked (scripts, CI,
#: the README tour). Never argv: a command line is visible to every user of the machine
#: (ps, /proc/<pid>/cmdline) and stays in shell history.
ADMIN_PASSWORD_ENV = "ADMIN_PASSWORD"


class PasswordUnavailable(Exception):
    """No password could be read for create-admin."""


def _read_admin_password(username: str) -> str:
    """The new admin's password: ADMIN_PASSWORD if set, else asked twice on the terminal
    (getpass: not echoed). Checked against the password rules either way."""
    from services.accounts import check_password_rules

    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise PasswordUnavailable(f"set {ADMIN_PASSWORD_ENV} or run in a terminal to be asked for the password")
        password = getpass.getpass("password: ")
        if getpass.getpass("password (again): ") != password:
            raise PasswordUnavailable("the two passwords differ")
    check_password_rules(password, username)
    return password


async def _create_admin(settings: Settings, username: str, password: str, role: str) -> None:
    from server.db import apply_migrations, open_orm
    from services.accounts import operators as accounts

    if settings.auto_migrate:
        await apply_migrations(settings.database_url)
    ctx = await open_orm(settings.database_url)
    try:
        admin = await accounts.create_admin(username, password, role)
    finally:
        await ctx.close_connections()
    print(f"created admin {admin.username!r} (id {admin.id}, role {admin.role})", flush=True)


async def _with_resources(settings: Settings, job: Callable[[AnyRedis], Awaitable[None]]) -> None:
    """Open the database and Redis as the server would, run ``job``, close them."""
    from redis.asyncio import RedisCluster

    from server.app import connect_redis
    from server.db import apply_migrations, open_orm

    if settings.redis_url is None:
        raise SettingsError("set REDIS_URL: this command works on the Redis the servers use")
    if settings.auto_migrate:
        await apply_migrations(settings.database_url)
    ctx = await open_orm(settings.database_url)
    redis = connect_redis(settings.redis_url, cluster=settings.redis_cluster)
    if isinstance(redis, RedisCluster):  # settings.redis_cluster
        await redis.initialize()
    try:
        await job(redis)
    finally:
        await redis.aclose()
        await ctx.close_connections()


async def _worker(settings: Settings) -> None:
    """The background workers alone, without HTTP (scale them apart from the servers)."""
    import aiohttp

    from server.app import build_journey, wechat_client
    from server.loop_watch import watching
    from server.workers import alerts_loop, claims_worker, notify_sender, scheduler_loop, webhook_sender
    from services.automation import execute_due_forever
    from services.journey import issue_pending_forever
    from services.notify import send_forever
    from services.stock import Stock
    from services.webhooks import deliver_forever

    async def job(redis: AnyRedis) -> None:
        print(
            "worker running (scheduler + claims + reward grants + automation + notifications + webhooks + alerts);"
            " Ctrl-C stops it",
            flush=True,
        )
        stock = Stock(redis)
        journey = build_journey(redis, stock, settings)
        if settings.gc_freeze:
            freeze_heap()
        async with aiohttp.ClientSession() as session, watching(settings.loop_stall_ms):
            # The WeChat base URL: with the emulator, the one a server on HOST:PORT mounts.
            client = wechat_client(session, redis, settings)
            await asyncio.gather(
                scheduler_loop(redis, stock, settings),
                claims_worker(redis, settings).run_forever(),
                issue_pending_forever(journey.rewards, settings.scheduler_interval),
                execute_due_forever(journey, settings.scheduler_interval),
                send_forever(notify_sender(redis, client, settings), settings.scheduler_interval),
                deliver_forever(webhook_sender(redis, session, settings), settings.webhook_interval),
                alerts_loop(redis, settings),
            )

    await _with_resources(settings, job)


async def _reconcile(settings: Settings, coupon_id: int | None) -> None:
    from server.workers import claims_worker
    from services.stock import Stock, reconcile

    async def job(redis: AnyRedis) -> None:
        reports = await reconcile.reconcile(Stock(redis), claims_worker(redis, settings), coupon_id)
        for r in reports:
            state = "repaired" if r.repaired else "ok"
            print(
                f"coupon {r.coupon_id} (campaign {r.campaign_id}): issued {r.issued}, stock {r.stock_before} -> "
                f"{r.stock_after}, holder customers {r.holder_customers_before} -> {r.holder_customers_after} "
                f"({r.holders_corrected} corrected): {state}",
                flush=True,
            )
        print(f"{len(reports)} coupon(s) reconciled", flush=True)

    await _with_resources(settings, job)


def _settings_table(target: Path | None) -> int:
    if target is None:
        print(settings_table())
        return 0
    try:
        target.write_text(with_table(target.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, SettingsError) as exc:
        print(f"error: {target}: {exc}", file=sys.stderr)
        return 1
    print(f"{target}: settings table written", flush=True)
    return 0


def _openapi(target: Path | None) -> int:
    from handlers import all_routes
    from server import __version__
    from server.openapi import API_TITLE, build_openapi

    text = json.dumps(build_openapi(all_routes().routes, title=API_TITLE, version=__version__), indent=2) + "\n"
    if target is None:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="WeChat campaign backend")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="serve with N processes sharing the port (overrides WORKERS; see docs/operations.md)",
    )  # fmt: skip
    # A child of `--workers N` (server/supervisor.py): serve on the shared port.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the HTTP server (the default)")
    # Also after the command (`python -m server serve --workers 2`); unset, the top level's stands.
    serve.add_argument("--workers", type=int, default=argparse.SUPPRESS, metavar="N", help="as above")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser(
        "doctor",
        help="check this deployment's settings, database, Redis, WeChat and persistence; exit 1 if anything is wrong",
    )
    create = sub.add_parser(
        "create-admin",
        help=f"create an admin account; the password is asked twice on the terminal, or read from {ADMIN_PASSWORD_ENV}"
        " (never from the command line)",
    )
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=["operator", "reviewer", "approver", "superadmin"])
    sub.add_parser(
        "worker", help="run the background workers (scheduler, claims, grants, automation, notifications) without HTTP"
    )
    reconcile_cmd = sub.add_parser("reconcile-stock", help="rebuild Redis stock counters from the database")
    reconcile_cmd.add_argument("--coupon", type=int, default=None, help="only this coupon (id)")
    table_cmd = sub.add_parser(
        "settings-table", help="print the markdown table of every setting (the README's configuration table)"
    )
    table_cmd.add_argument(
        "--write", metavar="FILE", type=Path, default=None, help="put it between the settings-table markers of FILE"
    )
    openapi_cmd = sub.add_parser(
        "openapi", help="print the OpenAPI document the server serves at /api/openapi.json (the console's types)"
    )
    openapi_cmd.add_argument("--write", metavar="FILE", type=Path, default=None, help="write it to FILE instead")
    args = parser.parse_args(argv)
    if args.command == "openapi":
        # Built from the route table alone: needs no valid environment, no database.
        return _openapi(args.write)
    if args.command == "settings-table":
        # Documentation only: needs no valid environment.
        return _settings_table(args.write)
    if args.command == "doctor":
        from server.doctor import doctor

        return doctor()
    try:
        settings = Settings.from_env()
        workers = settings.workers if args.workers is None else args.workers
        if not 1 <= workers <= 64:
            raise SettingsError(f"--workers must be between 1 and 64, got {workers}")
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from services.core import AppError

    try:
        if args.command in (None, "serve") and workers > 1 and not args.child:
            from server.supervisor import supervise

            return supervise(settings, workers)
        if args.command in (None, "serve"):
            _serve(settings, child=args.child)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "worker":
            logs.configure(settings.log_level, settings.log_format)
            new_loop, loop_name = loop_factory(settings.uvloop)
            print(f"event loop: {loop_name}", flush=True)
            with asyncio.Runner(loop_factory=new_loop) as runner:
                runner.run(_worker(settings))
        elif args.command == "reconcile-stock":
            asyncio.run(_reconcile(settings, args.coupon))
        elif args.command == "create-admin":
            password = _read_admin_password(args.username)
            asyncio.run(_create_admin(settings, args.username, password, args.role))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except PasswordUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
