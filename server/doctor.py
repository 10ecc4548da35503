"""``python -m server doctor``: check a deployment before (or while) it serves.

Reads the settings as the server would, then checks, each in plain words:

- the settings themselves (what the server would refuse, and what is merely unwise);
- the database: reachable, migrated, and taking writes;
- Redis: reachable; for a cluster, every one of the 16384 slots served; a cluster node
  given without ``REDIS_CLUSTER=true`` (or the reverse);
- Redis persistence: coupon stock and the claims not yet written to the database live
  only in Redis, so ``appendonly`` must be ``yes`` and ``appendfsync`` ``everysec`` or
  ``always`` on every master;
- WeChat: the API base answers, and ``/cgi-bin/stable_token`` (without
  ``force_refresh``: the current token, nothing invalidated) accepts the app id and
  secret.

Prints one line per check (``ok``, ``WARNING`` or ``PROBLEM``) and exits 1 when any
check found a problem, 0 otherwise. It changes nothing (the write probe updates no row).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from tortoise.exceptions import DBConnectionError

from server.dependencies import safe_url
from server.settings import Settings, SettingsError

_TIMEOUT = 5.0
_SLOTS = 16384


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        print(f"ok       {text}", flush=True)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        print(f"WARNING  {text}", flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"PROBLEM  {text}", flush=True)


def _settings_checks(settings: Settings, report: Report) -> None:
    report.ok(f"settings are valid (APP_ENV={settings.app_env}, WORKERS={settings.workers})")
    if settings.app_env != "production":
        report.warn(f"APP_ENV is {settings.app_env}: set APP_ENV=production on a live deployment")
    if settings.app_env == "production" and settings.metrics_token is None and settings.metrics_listen is None:
        report.warn("GET /metrics answers 404 in production: set METRICS_TOKEN or METRICS_LISTEN to scrape it")
    if settings.redis_url is None and shutil.which("redis-server") is None:
        report.problem("REDIS_URL is unset (embedded Redis) but redis-server is not installed")


async def _database(settings: Settings, report: Report) -> None:
    from server.db import open_orm, write_probe

    where = safe_url(settings.database_url)
    if settings.database_url.startswith("sqlite://"):
        path = Path(settings.database_url.removeprefix("sqlite://").split("?", 1)[0])
        # Opening a missing file would create it; one stat is no blocking worth a thread.
        if str(path) != ":memory:" and not path.exists():  # noqa: ASYNC240
            report.problem(f"database file {path} does not exist: run `python -m server migrate` (or AUTO_MIGRATE)")
            return
    try:
        ctx = await asyncio.wait_for(open_orm(settings.database_url), timeout=_TIMEOUT)
    except Exception as exc:
        report.problem(f"database {where} is not reachable: {type(exc).__name__}: {exc}")
        return
    try:
        try:
            await asyncio.wait_for(write_probe(ctx.db(), settings.database_url), timeout=_TIMEOUT)
        except (OSError, DBConnectionError, TimeoutError) as exc:  # a pool connects lazily: on first use
            report.problem(f"database {where} is not reachable: {type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            text = str(exc).lower()
            if "no such table" in text or "does not exist" in text:
                report.problem(f"database {where} has no tables: run `python -m server migrate` (or AUTO_MIGRATE)")
            else:
                report.problem(f"database {where} does not take writes: {type(exc).__name__}: {exc}")
            return
        report.ok(f"database {where} is reachable, migrated and takes writes")
    finally:
        await ctx.close_connections()


async def _persistence(client: Any, report: Report, node: str) -> None:
    try:
        config = await client.config_get("append*")
    except redis_errors.ResponseError as exc:  # CONFIG renamed or disabled (a managed Redis)
        report.warn(f"Redis {node}: cannot read its persistence settings ({exc}); check appendonly by hand")
        return
    values = {str(k if isinstance(k, str) else k.decode()): v for k, v in config.items()}
    appendonly = str(values.get("appendonly", "")).lower()
    fsync = str(values.get("appendfsync", "")).lower()
    if appendonly != "yes":
        report.problem(
            f"Redis {node} has appendonly {appendonly or 'unknown'}: a restart loses coupon stock and the grabs not yet"
            " written to the database; set appendonly yes"
        )
    elif fsync not in ("everysec", "always"):
        report.problem(
            f"Redis {node} has appendfsync {fsync or 'unknown'}: the operating system decides when grabs reach the"
            " disk; set appendfsync everysec"
        )
    else:
        report.ok(f"Redis {node} persists: appendonly yes, appendfsync {fsync}")


async def _redis(settings: Settings, report: Report) -> None:
    if settings.redis_url is None:
        report.ok("Redis is embedded (started by the server with appendonly yes, appendfsync everysec)")
        return
    where = safe_url(settings.redis_url)
    options: dict[str, Any] = {"socket_timeout": _TIMEOUT, "socket_connect_timeout": _TIMEOUT}
    plain = Redis.from_url(settings.redis_url, **options)
    try:
        try:
            info = await plain.info("cluster")
        except (OSError, redis_errors.RedisError) as exc:
            report.problem(f"Redis {where} is not reachable: {type(exc).__name__}: {exc}")
            return
        is_cluster = int(info.get("cluster_enabled", 0)) == 1
        if is_cluster and not settings.redis_cluster:
            report.problem(f"Redis {where} is a cluster node but REDIS_CLUSTER is false: set REDIS_CLUSTER=true")
            return
        if settings.redis_cluster and not is_cluster:
            report.problem(f"REDIS_CLUSTER is true but Redis {where} is not a cluster node")
            return
        if not is_cluster:
            report.ok(f"Redis {where} answers")
            await _persistence(plain, report, where)
            return
        cluster_info = await plain.execute_command("CLUSTER INFO")
        if isinstance(cluster_info, dict):  # redis-py parses it into a dict of strings
            fields = {str(k): str(v) for k, v in cluster_info.items()}
        else:
            text = cluster_info.decode() if isinstance(cluster_info, bytes) else str(cluster_info)
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        state = fields.get("cluster_state", "?").strip()
        slots_ok = int(fields.get("cluster_slots_ok", "0").strip() or 0)
        if state != "ok" or slots_ok != _SLOTS:
            report.problem(
                f"Redis Cluster at {where} is {state} with {slots_ok} of {_SLOTS} slots served: grabs of campaigns"
                " whose slots are not served fail"
            )
        else:
            report.ok(f"Redis Cluster at {where} is ok: all {_SLOTS} slots served")
    finally:
        await plain.aclose()
    cluster = RedisCluster.from_url(settings.redis_url, **options)
    try:
        await cluster.initialize()
        for node in cluster.get_primaries():
            one = Redis(host=node.host, port=int(node.port), **options)
            try:
                await _persistence(one, report, f"{node.host}:{node.port}")
            finally:
                await one.aclose()
    except (OSError, redis_errors.RedisError) as exc:
        report.problem(f"Redis Cluster at {where}: cannot reach every master: {type(exc).__name__}: {exc}")
    finally:
        await cluster.aclose()


async def _wechat(settings: Settings, report: Report) -> None:
    base = settings.wechat_base_url
    what = "the WeChat emulator" if settings.emulator_enabled else "WeChat"
    timeout = aiohttp.ClientTimeout(total=max(_TIMEOUT, settings.wechat_timeout))
    # force_refresh false: read the current token, so nothing is invalidated.
    body: dict[str, str | bool] = {
        "grant_type": "client_credential", "appid": settings.appid, "secret": settings.app_secret,
        "force_refresh": False,
    }  # fmt: skip
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(base + "/cgi-bin/stable_token", json=body) as resp,
        ):
            status = resp.status
            payload = await resp.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        hint = " (the emulator is served by the server itself: start it first)" if settings.emulator_enabled else ""
        report.problem(f"{what} at {base} is not reachable: {type(exc).__name__}{hint}")
        return
    if not isinstance(payload, dict):
        report.problem(f"{what} at {base} answered HTTP {status}, not WeChat's JSON: is WECHAT_API_BASE right?")
        return
    errcode = payload.get("errcode", 0)
    if errcode not in (0, None) or not payload.get("access_token"):
        report.problem(
            f"{what} at {base} refused a token for app {settings.appid}: errcode {errcode} {payload.get('errmsg', '')}"
            " (check WECHAT_APPID and WECHAT_SECRET, and that this server's address is on the app's IP allowlist)"
        )
        return
    report.ok(f"{what} at {base} issues access tokens for app {settings.appid}")


async def _run(settings: Settings) -> Report:
    report = Report()
    _settings_checks(settings, report)
    await _database(settings, report)
    await _redis(settings, report)
    await _wechat(settings, report)
    return report


def doctor() -> int:
    """Run every check; 0 when nothing is wrong, 1 otherwise."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"PROBLEM  settings: {exc}", flush=True)
        print("1 problem found", flush=True)
        return 1
    report = asyncio.run(_run(settings))
    if report.problems:
        count = len(report.problems)
        print(f"{count} problem{'s' if count > 1 else ''} found", flush=True)
        return 1
    print(f"no problems found ({len(report.warnings)} warnings)", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(doctor())
