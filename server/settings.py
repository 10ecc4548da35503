"""Settings read from the environment once, validated at start-up.

Every setting is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from services.notify.templates import NotifyTemplates, TemplateConfigError, default_templates_json, parse_templates

AppEnv = Literal["development", "test", "production"]

#: The development secret. Production refuses to start with it.
DEFAULT_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"
#: App id used when no real WeChat app is configured: the emulator serves it.
EMULATOR_APPID = "wx_emulator_app"
EMULATOR_SECRET = "emulator-secret"


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names it."""


#: A QR signing key id: short, because it travels in every payload.
_QR_KID = re.compile(r"^[A-Za-z0-9]{1,8}$")


def parse_qr_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """``QR_SIGNING_KEYS`` as ((kid, secret), ...): "kid1:secret1,kid2:secret2", the first
    signs. Kids are upper-cased (payloads use the QR alphanumeric alphabet). Messages name
    the kid, never the secret."""
    keys: list[tuple[str, str]] = []
    for part in raw.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not _QR_KID.match(kid):
            raise SettingsError("QR_SIGNING_KEYS: kid:secret pairs separated by commas (kid: 1-8 letters, digits)")
        if len(secret.strip()) < 32:
            raise SettingsError(f"QR_SIGNING_KEYS: the secret of key {kid!r} must be at least 32 characters")
        if any(k == kid.upper() for k, _ in keys):
            raise SettingsError(f"QR_SIGNING_KEYS: key id {kid!r} is given twice")
        keys.append((kid.upper(), secret.strip()))
    return tuple(keys)


def parse_kids(raw: str) -> frozenset[str]:
    kids = [k.strip() for k in raw.split(",") if k.strip()]
    for kid in kids:
        if not _QR_KID.match(kid):
            raise SettingsError(f"QR_RETIRED_KEYS: {kid!r} is not a key id (1-8 letters/digits)")
    return frozenset(k.upper() for k in kids)


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
    # `python -m server` (serve, worker) on uvloop's event loop when it is installed.
    uvloop: bool = True
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
    # QR redemption: payload lifetime; signing keys "kid:secret,..." (first signs, the
    # rest verify; None = one key "k1" derived from SECRET_KEY, refused in production);
    # key ids refused outright, comma-separated.
    qr_ttl_seconds: int = 60
    qr_signing_keys: str | None = field(default=None, repr=False)
    qr_retired_keys: str = ""
    # How long after a redemption a manager of its store may reverse it, seconds.
    redemption_reverse_window_seconds: int = 1800
    # Voucher expiry job: how often it runs (once per interval across processes), and
    # how many hours before valid_until an "expiring soon" reminder is queued (0: none).
    voucher_expiry_interval: int = 300
    voucher_reminder_hours: int = 72
    # Automation: how often the inactive-customers pass looks for customers to run
    # inactive_for_days rules for (once per interval across processes), seconds.
    automation_inactive_interval: int = 3600
    # Customer journey: points per yuan (100 fen) of a purchase event, and how far an
    # integration's X-Timestamp may be from the server's clock, seconds.
    points_per_yuan: int = 1
    integration_max_skew: int = 300
    # Discovery feed: the weight of each ranking component (services.feed documents the
    # score), what "near" and "ending soon" mean, and how long its caches are trusted.
    feed_weight_audience: float = 3.0
    feed_weight_interest: float = 2.0
    feed_weight_behaviour: float = 1.5
    feed_weight_store: float = 2.0
    feed_weight_distance: float = 2.0
    feed_weight_ending: float = 1.0
    feed_weight_popularity: float = 1.0
    feed_weight_joined: float = -2.0
    feed_near_km: float = 5.0
    feed_ending_soon_days: int = 3
    feed_cache_seconds: float = 60.0
    feed_audience_ttl: int = 300
    feed_ranking_seconds: float = 10.0
    feed_ranking_entries: int = 2000
    # Subscribe-message notifications: kind -> template (JSON, services.notify_templates;
    # None = the emulator's templates when the emulator runs, none with a real app), the
    # send rate across processes (messages per window), retries of transient errors, how
    # many hours before its end a campaign's participants hear it ends (0: never), the
    # offset of the times shown, and the rows one sender pass takes at a time.
    notify_templates: str | None = None
    notify_rate_limit: int = 600
    notify_rate_window_seconds: int = 60
    notify_max_attempts: int = 5
    notify_retry_seconds: float = 30.0
    notify_ending_hours: int = 24
    notify_utc_offset_minutes: int = 480
    notify_batch: int = 100

    @property
    def emulator_enabled(self) -> bool:
        """True when no real WeChat app is configured: the local emulator stands in."""
        return self.wechat_appid is None

    @property
    def notify(self) -> NotifyTemplates:
        """The parsed NOTIFY_TEMPLATES (or the embedded default)."""
        return parse_templates(self.notify_templates or default_templates_json(self.emulator_enabled))

    @property
    def qr_keys(self) -> tuple[tuple[str, str], ...]:
        """(kid, secret) pairs, the signer first."""
        if self.qr_signing_keys is None:
            derived = hmac.new(self.secret_key.encode(), b"wxcampaign qr signing key v1", hashlib.sha256).hexdigest()
            return (("K1", derived),)
        return parse_qr_keys(self.qr_signing_keys)

    @property
    def qr_retired(self) -> frozenset[str]:
        return parse_kids(self.qr_retired_keys)

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
            "uvloop": _bool(env, "UVLOOP", True),
            "grab_user_max": _int(env, "GRAB_USER_MAX", 10, 1, 1_000_000),
            "grab_user_window_ms": _int(env, "GRAB_USER_WINDOW_MS", 10_000, 100, 3_600_000),
            "grab_ip_rate": _float(env, "GRAB_IP_RATE", 100.0, 0.1, 1_000_000.0),
            "grab_ip_burst": _int(env, "GRAB_IP_BURST", 200, 1, 10_000_000),
            "claims_batch": _int(env, "CLAIMS_BATCH", 500, 1, 10_000),
            "claims_min_idle_ms": _int(env, "CLAIMS_MIN_IDLE_MS", 30_000, 0, 3_600_000),
            "qr_ttl_seconds": _int(env, "QR_TTL_SECONDS", 60, 5, 86_400),
            "qr_signing_keys": _str(env, "QR_SIGNING_KEYS", None),
            "qr_retired_keys": _str(env, "QR_RETIRED_KEYS", "") or "",
            "redemption_reverse_window_seconds": _int(env, "REDEMPTION_REVERSE_WINDOW_SECONDS", 1800, 0, 30 * 86_400),
            "voucher_expiry_interval": _int(env, "VOUCHER_EXPIRY_INTERVAL", 300, 1, 86_400),
            "voucher_reminder_hours": _int(env, "VOUCHER_REMINDER_HOURS", 72, 0, 24 * 365),
            "automation_inactive_interval": _int(env, "AUTOMATION_INACTIVE_INTERVAL", 3600, 1, 7 * 86_400),
            "points_per_yuan": _int(env, "POINTS_PER_YUAN", 1, 0, 10_000),
            "integration_max_skew": _int(env, "INTEGRATION_MAX_SKEW", 300, 10, 3600),
            **{
                f"feed_weight_{name}": _float(env, f"FEED_WEIGHT_{name.upper()}", default, -100.0, 100.0)
                for name, default in (
                    ("audience", 3.0),
                    ("interest", 2.0),
                    ("behaviour", 1.5),
                    ("store", 2.0),
                    ("distance", 2.0),
                    ("ending", 1.0),
                    ("popularity", 1.0),
                    ("joined", -2.0),
                )
            },
            "feed_near_km": _float(env, "FEED_NEAR_KM", 5.0, 0.1, 1000.0),
            "feed_ending_soon_days": _int(env, "FEED_ENDING_SOON_DAYS", 3, 1, 365),
            "feed_cache_seconds": _float(env, "FEED_CACHE_SECONDS", 60.0, 0.0, 3600.0),
            "feed_audience_ttl": _int(env, "FEED_AUDIENCE_TTL", 300, 1, 86_400),
            "feed_ranking_seconds": _float(env, "FEED_RANKING_SECONDS", 10.0, 0.0, 3600.0),
            "feed_ranking_entries": _int(env, "FEED_RANKING_ENTRIES", 2000, 1, 1_000_000),
            "notify_templates": _str(env, "NOTIFY_TEMPLATES", None),
            "notify_rate_limit": _int(env, "NOTIFY_RATE_LIMIT", 600, 1, 1_000_000),
            "notify_rate_window_seconds": _int(env, "NOTIFY_RATE_WINDOW_SECONDS", 60, 1, 86_400),
            "notify_max_attempts": _int(env, "NOTIFY_MAX_ATTEMPTS", 5, 1, 100),
            "notify_retry_seconds": _float(env, "NOTIFY_RETRY_SECONDS", 30.0, 0.0, 86_400.0),
            "notify_ending_hours": _int(env, "NOTIFY_ENDING_HOURS", 24, 0, 24 * 365),
            "notify_utc_offset_minutes": _int(env, "NOTIFY_UTC_OFFSET_MINUTES", 480, -720, 840),
            "notify_batch": _int(env, "NOTIFY_BATCH", 100, 1, 10_000),
        }
        known = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise SettingsError(f"unknown setting override {key!r}")
            values[key] = value
        settings = cls(**values)  # type: ignore[arg-type]  # one dict of every field: each value typed by its parser
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
        try:
            self.notify  # noqa: B018 -- parsed for its errors
        except TemplateConfigError as exc:
            raise SettingsError(str(exc)) from None
        signers = self.qr_keys
        if signers[0][0] in self.qr_retired:
            raise SettingsError(f"QR_SIGNING_KEYS: the signing key {signers[0][0]!r} is listed in QR_RETIRED_KEYS")
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
            if self.qr_signing_keys is None:
                problems.append("QR signing keys derived from SECRET_KEY (set QR_SIGNING_KEYS)")
            if problems:
                raise SettingsError("refusing to start in production with " + ", ".join(problems))
