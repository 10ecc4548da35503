"""Settings read from the environment once, validated at start-up.

Every setting is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

AppEnv = Literal["development", "test", "production"]

#: The development secret. Production refuses to start with it.
DEFAULT_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"
#: App id used when no real WeChat app is configured: the emulator serves it.
EMULATOR_APPID = "wx_emulator_app"
EMULATOR_SECRET = "emulator-secret"


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _str(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one server process."""

    app_env: AppEnv = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str = "sqlite://data/app.sqlite3"
    #: None means: start a local redis-server under data_dir (embedded mode).
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (the client discovers the rest).
    redis_cluster: bool = False
    secret_key: str = DEFAULT_SECRET
    auto_migrate: bool = True
    #: None means: no real app; the server mounts the WeChat emulator at /_wechat.
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    #: None means: the emulator mounted on this server (http://127.0.0.1:PORT/_wechat).
    wechat_api_base: str | None = None
    wechat_timeout: float = 5.0
    wechat_max_retries: int = 2
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    max_body_bytes: int = 1024 * 1024
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    #: How many reverse proxies in front of us may set X-Forwarded-For (0: ignore it).
    trusted_proxy_hops: int = 0
    log_level: str = "INFO"
    # Uploaded images (campaign banners, posters) live here; None = DATA_DIR/media.
    media_root: Path | None = None
    max_upload_bytes: int = 5 * 1024 * 1024
    # Campaign review: 0, 1 (reviewer) or 2 (reviewer, then approver) levels.
    review_levels: int = 1
    # Whether copy-only edits (texts, images, tags) of an approved campaign skip review.
    copy_edits_skip_review: bool = True
    # How often the scheduler looks for campaigns to start or end, seconds.
    scheduler_interval: float = 5.0
    # Run background workers (scheduler, claims persistence) inside the server process.
    run_workers: bool = True
    # Grab throttles: per customer and campaign across processes (in the grab script),
    # and per client address in each process.
    grab_user_max: int = 10
    grab_user_window_ms: int = 10_000
    grab_ip_rate: float = 100.0
    grab_ip_burst: int = 200
    # Claims worker: batch size, and how long an entry may sit unacknowledged with a
    # consumer before another takes it over.
    claims_batch: int = 500
    claims_min_idle_ms: int = 30_000

    @property
    def emulator_enabled(self) -> bool:
        """True when no real WeChat app is configured: the local emulator stands in."""
        return self.wechat_appid is None

    @property
    def media_dir(self) -> Path:
        return self.media_root if self.media_root is not None else self.data_dir / "media"

    @property
    def appid(self) -> str:
        return self.wechat_appid or EMULATOR_APPID

    @property
    def app_secret(self) -> str:
        return self.wechat_secret or EMULATOR_SECRET

    @property
    def wechat_base_url(self) -> str:
        if self.wechat_api_base:
            return self.wechat_api_base.rstrip("/")
        if self.emulator_enabled:
            host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
            return f"http://{host}:{self.port}/_wechat"
        return "https://api.weixin.qq.com"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read and validate settings; raise SettingsError naming the first bad one."""
        env = os.environ if env is None else env
        app_env = _str(env, "APP_ENV", "development")
        if app_env not in ("development", "test", "production"):
            raise SettingsError(f"APP_ENV must be development, test or production, got {app_env!r}")
        data_dir = Path(_str(env, "DATA_DIR", "data") or "data")
        values: dict[str, object] = {
            "app_env": app_env,
            "host": _str(env, "HOST", "127.0.0.1"),
            "port": _int(env, "PORT", 8080, 1, 65535),
            "data_dir": data_dir,
            "database_url": _str(env, "DATABASE_URL", f"sqlite://{data_dir}/app.sqlite3"),
            "redis_url": _str(env, "REDIS_URL", None),
            "redis_cluster": _bool(env, "REDIS_CLUSTER", False),
            "secret_key": _str(env, "SECRET_KEY", DEFAULT_SECRET),
            "auto_migrate": _bool(env, "AUTO_MIGRATE", app_env != "production"),
            "wechat_appid": _str(env, "WECHAT_APPID", None),
            "wechat_secret": _str(env, "WECHAT_SECRET", None),
            "wechat_api_base": _str(env, "WECHAT_API_BASE", None),
            "wechat_timeout": _float(env, "WECHAT_TIMEOUT", 5.0, 0.1, 60.0),
            "wechat_max_retries": _int(env, "WECHAT_MAX_RETRIES", 2, 0, 10),
            "access_token_ttl": _int(env, "ACCESS_TOKEN_TTL", 900, 30, 86400),
            "refresh_token_ttl": _int(env, "REFRESH_TOKEN_TTL", 30 * 24 * 3600, 300, 365 * 86400),
            "max_body_bytes": _int(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
            "login_max_failures": _int(env, "LOGIN_MAX_FAILURES", 5, 1, 1000),
            "login_lockout_seconds": _int(env, "LOGIN_LOCKOUT_SECONDS", 900, 1, 86400),
            "trusted_proxy_hops": _int(env, "TRUSTED_PROXY_HOPS", 0, 0, 10),
            "log_level": (_str(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
            "media_root": Path(m) if (m := _str(env, "MEDIA_ROOT", None)) else None,
            "max_upload_bytes": _int(env, "MAX_UPLOAD_BYTES", 5 * 1024 * 1024, 1024, 50 * 1024 * 1024),
            "review_levels": _int(env, "REVIEW_LEVELS", 1, 0, 2),
            "copy_edits_skip_review": _bool(env, "COPY_EDITS_SKIP_REVIEW", True),
            "scheduler_interval": _float(env, "SCHEDULER_INTERVAL", 5.0, 0.05, 3600.0),
            "run_workers": _bool(env, "RUN_WORKERS", True),
            "grab_user_max": _int(env, "GRAB_USER_MAX", 10, 1, 1_000_000),
            "grab_user_window_ms": _int(env, "GRAB_USER_WINDOW_MS", 10_000, 100, 3_600_000),
            "grab_ip_rate": _float(env, "GRAB_IP_RATE", 100.0, 0.1, 1_000_000.0),
            "grab_ip_burst": _int(env, "GRAB_IP_BURST", 200, 1, 10_000_000),
            "claims_batch": _int(env, "CLAIMS_BATCH", 500, 1, 10_000),
            "claims_min_idle_ms": _int(env, "CLAIMS_MIN_IDLE_MS", 30_000, 0, 3_600_000),
        }
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise SettingsError(f"unknown setting override {key!r}")
            values[key] = value
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse unsafe or inconsistent combinations; production is strict."""
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if not self.database_url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise SettingsError("DATABASE_URL must be a sqlite:// or postgres:// URL")
        if self.redis_cluster and self.redis_url is None:
            raise SettingsError("REDIS_CLUSTER needs REDIS_URL (a node of the cluster)")
        if (self.wechat_appid is None) != (self.wechat_secret is None):
            raise SettingsError("WECHAT_APPID and WECHAT_SECRET must be set together")
        if len(self.secret_key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters")
        if self.app_env == "production":
            problems = []
            if self.emulator_enabled:
                problems.append("the WeChat emulator (set WECHAT_APPID and WECHAT_SECRET)")
            if self.secret_key == DEFAULT_SECRET:
                problems.append("the default SECRET_KEY")
            if self.database_url.startswith("sqlite://"):
                problems.append("SQLite (set DATABASE_URL to PostgreSQL)")
            if self.redis_url is None:
                problems.append("an embedded Redis (set REDIS_URL)")
            if problems:
                raise SettingsError("refusing to start in production with " + ", ".join(problems))
