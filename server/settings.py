"""Settings read from the environment once, validated at start-up: each declared once, as
a field of :class:`Settings` with :func:`~server.setting_spec.setting` (env name, type,
default, range, help). The README's table is generated from them (server/settings_table.py).
Defaults a domain policy also needs are read from that policy, so each is written once."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from server.setting_spec import SettingsError, choices_error, declared_of, parse_kids, parse_qr_keys, setting
from services.alerts import AlertPolicy
from services.feed import FeedPolicy
from services.forms import RiskPolicy, WhenUnranked
from services.journey import JourneyPolicy
from services.notify import NotifyTemplates, SenderPolicy, TemplateConfigError, default_templates_json, parse_templates
from services.stock import GrabPolicy
from services.webhooks import DeliveryPolicy

AppEnv = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]

#: The development secret. Production refuses to start with it.
DEFAULT_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"
#: App id used when no real WeChat app is configured: the emulator serves it.
EMULATOR_APPID = "wx_emulator_app"
EMULATOR_SECRET = "emulator-secret"

# The domain policies' defaults are the settings' defaults (read, never restated).
_FEED = FeedPolicy()
_GRAB = GrabPolicy()
_JOURNEY = JourneyPolicy()
_SENDER = SenderPolicy()
_RISK = RiskPolicy()
_DELIVERY = DeliveryPolicy()
_ALERTS = AlertPolicy()


def _feed_weight(name: str, meaning: str) -> Any:
    """One of the feed's ranking weights (services.feed documents the score)."""
    return setting(
        f"FEED_WEIGHT_{name.upper()}",
        getattr(_FEED, name),
        f"the feed's `{name}` ranking weight: {meaning}; see [Discovery feed](#discovery-feed)",
        lo=-100.0,
        hi=100.0,
    )


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one server process: one field per environment variable,
    declared with :func:`setting` (read in this order: a derived default sees only the
    settings above it)."""

    app_env: AppEnv = setting(
        "APP_ENV",
        "development",
        "the environment; `production` refuses to start with the emulator, the default `SECRET_KEY`, QR"
        " signing keys derived from it, SQLite, or an embedded Redis",
    )
    host: str = setting("HOST", "127.0.0.1", "address to listen on")
    port: int = setting("PORT", 8080, "port to listen on", lo=1, hi=65535)
    data_dir: Path = setting("DATA_DIR", Path("data"), "where the embedded mode keeps its SQLite file and Redis data")
    database_url: str = setting(
        "DATABASE_URL",
        "sqlite://data/app.sqlite3",
        "`sqlite://path` or `postgres://user:pass@host:5432/db`; SQLite runs in WAL mode with"
        " `synchronous=NORMAL` (a power cut may lose the last commits, never corrupts the file; add"
        " `?synchronous=FULL` to wait for an fsync per commit)",
        derive=lambda s: f"sqlite://{s['data_dir']}/app.sqlite3",
        shown_default="`sqlite://$DATA_DIR/app.sqlite3`",
    )
    #: None means: start a local redis-server under data_dir (embedded mode).
    redis_url: str | None = setting(
        "REDIS_URL", None, "`redis://host:6379/0`; unset starts a local `redis-server` (must be installed)"
    )
    redis_cluster: bool = setting(
        "REDIS_CLUSTER",
        False,
        "`REDIS_URL` is a node of a Redis Cluster (the client discovers the rest; every multi-key script keeps"
        " its keys in one slot)",
    )
    secret_key: str = setting(
        "SECRET_KEY",
        DEFAULT_SECRET,
        "signs access tokens; ≥ 32 characters; must be set in production",
        shown_default="a development value",
    )
    auto_migrate: bool = setting(
        "AUTO_MIGRATE",
        True,
        "apply database migrations at start-up",
        derive=lambda s: s["app_env"] != "production",
        shown_default="`true` (`false` in production)",
    )
    #: None means: no real app; the server mounts the WeChat emulator at /_wechat.
    wechat_appid: str | None = setting(
        "WECHAT_APPID",
        None,
        "the mini program's app id; set with `WECHAT_SECRET` or not at all. Unset: the emulator at `/_wechat`"
        " stands in",
    )
    wechat_secret: str | None = setting(
        "WECHAT_SECRET", None, "the mini program's app secret; set with `WECHAT_APPID` or not at all"
    )
    #: None means: the emulator mounted on this server (http://127.0.0.1:PORT/_wechat).
    wechat_api_base: str | None = setting(
        "WECHAT_API_BASE",
        None,
        "base URL of WeChat's server API",
        shown_default="`https://api.weixin.qq.com`, or this server's `/_wechat` when emulated",
    )
    wechat_timeout: float = setting("WECHAT_TIMEOUT", 5.0, "seconds per WeChat call", lo=0.1, hi=60.0)
    wechat_max_retries: int = setting(
        "WECHAT_MAX_RETRIES",
        2,
        "retries (exponential backoff) when WeChat answers `-1` or the connection fails",
        lo=0,
        hi=10,
    )
    access_token_ttl: int = setting("ACCESS_TOKEN_TTL", 900, "access token lifetime, seconds", lo=30, hi=86400)
    refresh_token_ttl: int = setting(
        "REFRESH_TOKEN_TTL", 30 * 24 * 3600, "refresh token lifetime, seconds (30 days)", lo=300, hi=365 * 86400
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES",
        1024 * 1024,
        "largest request body; larger is `413 payload_too_large`",
        lo=1024,
        hi=64 * 1024 * 1024,
    )
    login_max_failures: int = setting(
        "LOGIN_MAX_FAILURES",
        5,
        "failed admin/staff logins per account and client address before that address is locked out of "
        "that account (4× that per address over all accounts)",
        lo=1,
        hi=1000,
    )
    login_lockout_seconds: int = setting(
        "LOGIN_LOCKOUT_SECONDS",
        900,
        "how long failures are counted and the first lockout lasts, seconds (each further one of the same "
        "account and address, or address, lasts twice as long, up to a day)",
        lo=1,
        hi=86400,
    )
    trusted_proxy_hops: int = setting(
        "TRUSTED_PROXY_HOPS",
        0,
        "reverse proxies allowed to set `X-Forwarded-For` (0 ignores the header)",
        lo=0,
        hi=10,
    )
    log_level: LogLevel = setting("LOG_LEVEL", "INFO", "log level (any case)", normalize=str.upper)
    log_format: LogFormat = setting(
        "LOG_FORMAT",
        "text",
        "`text`: one human-readable line per event (for a terminal); `json`: one JSON object per line (`ts`,"
        " `level`, `logger`, `msg`, `request_id`, `pid`, …) for a log shipper",
        normalize=str.lower,
    )
    workers: int = setting(
        "WORKERS",
        1,
        "server processes sharing `PORT` (`SO_REUSEPORT`); above 1 a parent process applies migrations, starts"
        " the embedded Redis if any, restarts a child that dies and stops them all on SIGTERM; `--workers N`"
        " overrides it; see [docs/operations.md](docs/operations.md)",
        lo=1,
        hi=64,
    )
    metrics_token: str | None = setting(
        "METRICS_TOKEN",
        None,
        "a bearer token `GET /metrics` requires (`Authorization: Bearer …`); unset: `/metrics` is open outside"
        " production and answers 404 in production (unless `METRICS_LISTEN` serves it apart)",
        repr=False,
    )
    metrics_listen: str | None = setting(
        "METRICS_LISTEN",
        None,
        "`host:port` of a separate listener serving only `GET /metrics` (no token there: bind it to an"
        " address only Prometheus reaches); with `--workers N` the parent serves it for all processes",
    )
    ready_claims_max_age: float = setting(
        "READY_CLAIMS_MAX_AGE",
        60.0,
        "`/readyz` answers 503 when the oldest grab not yet written to the database waits longer than this,"
        " seconds (the claims worker is stuck)",
        lo=1.0,
        hi=86_400.0,
    )
    # None = DATA_DIR/media (media_dir).
    media_root: Path | None = setting(
        "MEDIA_ROOT",
        None,
        "where uploaded campaign images (banners, posters) are stored",
        shown_default="`$DATA_DIR/media`",
    )
    console_dir: Path = setting(
        "CONSOLE_DIR",
        Path(__file__).resolve().parents[1] / "console" / "dist",
        "the built console (`npm run build` in `console/`; `./scripts/serve` builds it): served at `/admin/`"
        " (operators) and `/staff/` (the till page), `503 console_not_built` while missing; see"
        " [Console](docs/console.md)",
        shown_default="`console/dist` of this checkout",
    )
    max_upload_bytes: int = setting(
        "MAX_UPLOAD_BYTES", 5 * 1024 * 1024, "largest image upload, bytes", lo=1024, hi=50 * 1024 * 1024
    )
    review_levels: int = setting(
        "REVIEW_LEVELS",
        1,
        "campaign review levels: `0` (approved at once, same code path), `1` (reviewer), `2` (reviewer, then approver)",
        lo=0,
        hi=2,
    )
    copy_edits_skip_review: bool = setting(
        "COPY_EDITS_SKIP_REVIEW",
        True,
        "copy-only edits (texts, images, tags) of an approved campaign keep it approved",
    )
    scheduler_interval: float = setting(
        "SCHEDULER_INTERVAL",
        5.0,
        "seconds between scheduler passes (start and end campaigns on time)",
        lo=0.05,
        hi=3600.0,
    )
    run_workers: bool = setting(
        "RUN_WORKERS",
        True,
        "run background workers (the scheduler, the claims worker, the reward-grants retry, the automation"
        " worker, the notifications sender) inside the server process",
    )
    loop_stall_ms: int = setting(
        "LOOP_STALL_MS",
        100,
        "log a warning with the stack that held the event loop when it could not run for this long, ms"
        " (server/loop_watch.py; the loop's lag and garbage collection pauses are in `/metrics`); 0: not watched",
        lo=0,
        hi=60_000,
    )
    gc_freeze: bool = setting(
        "GC_FREEZE",
        True,
        "after start-up, move the objects `python -m server` (`serve` and `worker`) made so far out of the garbage"
        " collector's reach (`gc.freeze`): a full collection then walks only what was made since, instead of holding"
        ' the event loop 100 ms or more (docs/operations.md, "Event-loop stalls"); `false`: collect as Python does',
    )
    uvloop: bool = setting(
        "UVLOOP",
        True,
        "run `python -m server` (`serve` and `worker`) on uvloop's event loop when it is installed (it is in"
        " `requirements.txt`; the first line the server prints names the loop); `false`: asyncio's own loop",
    )
    # Grab throttles: per customer and campaign across processes (in the grab script),
    # and per client address in each process.
    grab_user_max: int = setting(
        "GRAB_USER_MAX",
        _GRAB.max_per_window,
        "grab attempts one customer may make on one campaign per `GRAB_USER_WINDOW_MS`, across all processes"
        " (`429 rate_limited`)",
        lo=1,
        hi=1_000_000,
    )
    grab_user_window_ms: int = setting(
        "GRAB_USER_WINDOW_MS", _GRAB.window_ms, "the window of `GRAB_USER_MAX`, milliseconds", lo=100, hi=3_600_000
    )
    grab_ip_rate: float = setting(
        "GRAB_IP_RATE",
        100.0,
        "grabs per second from one client address, per process (`429 rate_limited`)",
        lo=0.1,
        hi=1_000_000.0,
    )
    grab_ip_burst: int = setting(
        "GRAB_IP_BURST",
        200,
        "the burst of grabs one client address may make above `GRAB_IP_RATE`, per process",
        lo=1,
        hi=10_000_000,
    )
    claims_batch: int = setting(
        "CLAIMS_BATCH", 500, "claims the worker writes per database transaction", lo=1, hi=10_000
    )
    claims_min_idle_ms: int = setting(
        "CLAIMS_MIN_IDLE_MS",
        30_000,
        "a claim left unacknowledged this long (milliseconds) by a dead worker is taken over by another",
        lo=0,
        hi=3_600_000,
    )
    qr_ttl_seconds: int = setting(
        "QR_TTL_SECONDS", 60, "lifetime of a wallet QR payload and of a barcode number, seconds", lo=5, hi=86_400
    )
    # Never in a repr: it holds the signing secrets.
    qr_signing_keys: str | None = setting(
        "QR_SIGNING_KEYS",
        None,
        "`kid:secret,kid:secret,…`: the first signs QR payloads, the others still verify (key rotation); kid"
        " 1–8 letters/digits (upper-cased), secret ≥ 32 characters. Must be set in production",
        shown_default="one key `K1` derived from `SECRET_KEY`",
        repr=False,
    )
    qr_retired_keys: str = setting(
        "QR_RETIRED_KEYS",
        "",
        "comma-separated kids whose payloads are refused (`qr_invalid`), even if still listed in"
        " `QR_SIGNING_KEYS`; never the signing key",
    )
    redemption_reverse_window_seconds: int = setting(
        "REDEMPTION_REVERSE_WINDOW_SECONDS",
        1800,
        "how long after a redemption a manager of its store may reverse it, seconds",
        lo=0,
        hi=30 * 86_400,
    )
    voucher_expiry_interval: int = setting(
        "VOUCHER_EXPIRY_INTERVAL",
        300,
        "seconds between runs of the voucher expiry job (once per interval across processes)",
        lo=1,
        hi=86_400,
    )
    voucher_reminder_hours: int = setting(
        "VOUCHER_REMINDER_HOURS",
        72,
        'an "expiring soon" reminder is queued this many hours before a voucher\'s `valid_until` (`0`: none)',
        lo=0,
        hi=24 * 365,
    )
    automation_inactive_interval: int = setting(
        "AUTOMATION_INACTIVE_INTERVAL",
        3600,
        "seconds between passes looking for customers that `inactive_for_days` automation rules apply to (once"
        " per interval across processes); see [Automation rules](#automation-rules)",
        lo=1,
        hi=7 * 86_400,
    )
    retention_interval: int = setting(
        "RETENTION_INTERVAL",
        3600,
        "seconds between retention purges (once per interval across processes); see"
        " [Data rights](docs/data-rights.md#retention)",
        lo=1,
        hi=7 * 86_400,
    )
    tracking_retention_days: int = setting(
        "TRACKING_RETENTION_DAYS",
        90,
        "days the per-day unique reach and clickers of campaigns (derived from customer ids) are kept",
        lo=1,
        hi=400,
    )
    outbox_retention_days: int = setting(
        "OUTBOX_RETENTION_DAYS",
        30,
        "days finished subscribe messages, sent voucher reminders and delivered webhooks are kept after they finished",
        lo=1,
        hi=3650,
    )
    idempotency_retention_days: int = setting(
        "IDEMPOTENCY_RETENTION_DAYS",
        7,
        "days a redemption's `Idempotency-Key` is kept (a retry after that is a new request)",
        lo=1,
        hi=3650,
    )
    retention_batch: int = setting(
        "RETENTION_BATCH",
        1000,
        "rows a retention purge deletes or updates per statement (short transactions)",
        lo=1,
        hi=100_000,
    )
    points_per_yuan: int = setting(
        "POINTS_PER_YUAN",
        _JOURNEY.points_per_yuan,
        "points a purchase event earns per 100 fen (`0`: none)",
        lo=0,
        hi=10_000,
    )
    integration_max_skew: int = setting(
        "INTEGRATION_MAX_SKEW",
        _JOURNEY.integration_max_skew,
        "seconds an integration's `X-Timestamp` may differ from the server's clock",
        lo=10,
        hi=3600,
    )
    attribution_window_days: int = setting(
        "ATTRIBUTION_WINDOW_DAYS",
        _JOURNEY.attribution_window_days,
        "days after joining a campaign in which a participant's purchase is attributed to it, when no voucher "
        "was redeemed on the order (`0`: voucher orders only; docs/analytics.md)",
        lo=0,
        hi=365,
    )
    points_cost_fen: int = setting(
        "POINTS_COST_FEN",
        1,
        "fen one loyalty point costs the business, for a campaign's ROI (docs/analytics.md)",
        lo=0,
        hi=100_000,
    )
    integration_secret_grace: int = setting(
        "INTEGRATION_SECRET_GRACE",
        86_400,
        "seconds an integration's previous secret keeps signing valid events after `POST"
        " /api/v1/admin/integrations/{id}/rotate` (time to deploy the new one); `0`: refused at once",
        lo=0,
        hi=30 * 86_400,
    )
    feed_weight_audience: float = _feed_weight("audience", "when the campaign is targeted at you")
    feed_weight_interest: float = _feed_weight("interest", "× the share of the campaign's tags among your interests")
    feed_weight_behaviour: float = _feed_weight("behaviour", "when its categories meet those of your recent purchases")
    feed_weight_store: float = _feed_weight("store", "when it runs at your preferred store")
    feed_weight_distance: float = _feed_weight("distance", "× how near its nearest store is, within `FEED_NEAR_KM`")
    feed_weight_ending: float = _feed_weight("ending", "× how soon it ends, within `FEED_ENDING_SOON_DAYS`")
    feed_weight_popularity: float = _feed_weight("popularity", "× its participants, relative to the most popular")
    feed_weight_joined: float = _feed_weight("joined", "when you joined it (negative: joined campaigns sink)")
    feed_near_km: float = setting(
        "FEED_NEAR_KM",
        _FEED.near_km,
        'a store this close (km) to `lat`/`lng` is "near" (distance score and the near-you section)',
        lo=0.1,
        hi=1000.0,
    )
    feed_ending_soon_days: int = setting(
        "FEED_ENDING_SOON_DAYS",
        _FEED.ending_soon_days,
        'a running campaign ending within this many days is "ending soon"',
        lo=1,
        hi=365,
    )
    feed_cache_seconds: float = setting(
        "FEED_CACHE_SECONDS",
        _FEED.cache_seconds,
        "how long a process keeps its feed index before rebuilding it in the background (the old one answers"
        " meanwhile); an admin's change and the scheduler's transitions drop it at once, so what lags by up to"
        " this is participant counts, store openings and closings, and theme names",
        lo=0.0,
        hi=3600.0,
    )
    feed_audience_ttl: int = setting(
        "FEED_AUDIENCE_TTL",
        _FEED.audience_ttl,
        "seconds a targeted campaign's audience set serves the feed before it is rebuilt from the rule (in the"
        " background: the expired set answers meanwhile)",
        lo=1,
        hi=86_400,
    )
    feed_ranking_seconds: float = setting(
        "FEED_RANKING_SECONDS",
        _FEED.ranking_seconds,
        "how long a process keeps a customer's ranking for their next feed pages and sections (0: off); a join,"
        " a purchase or refund, a profile change or an admin's change drops it at once, in every process",
        lo=0.0,
        hi=3600.0,
    )
    feed_ranking_entries: int = setting(
        "FEED_RANKING_ENTRIES",
        _FEED.ranking_entries,
        "rankings a process keeps at most (least recently used out first; about 12 KB each with 1,000 campaigns)",
        lo=1,
        hi=1_000_000,
    )
    feed_profile_seconds: float = setting(
        "FEED_PROFILE_SECONDS",
        _FEED.profile_seconds,
        "how long a customer's feed profile (what ranking them reads of the database: tier, interests, store,"
        " categories bought, campaigns joined) is kept in Redis for their next first looks (0: off); a join, a"
        " purchase or refund, a profile or tier change drops it at once, so what lags by up to this is a"
        " purchase leaving the 90-day window",
        lo=0.0,
        hi=86_400.0,
    )
    feed_membership_seconds: float = setting(
        "FEED_MEMBERSHIP_SECONDS",
        _FEED.membership_seconds,
        "how long a customer's feed profile answers which targeted campaigns' audiences hold them before the"
        " audience sets are asked again (a new targeted campaign or a changed rule asks at once; never longer"
        " than FEED_AUDIENCE_TTL); audience membership in the feed then lags by up to FEED_AUDIENCE_TTL plus this",
        lo=0.0,
        hi=3600.0,
    )
    notify_templates: str | None = setting(
        "NOTIFY_TEMPLATES",
        None,
        'JSON `{kind: {"template_id", "page"?, "fields": {keyword: text}}}` for the kinds `new_campaign`,'
        " `campaign_ending`, `reward`, `voucher_expiring`, `group_result`, `bargain_result`, `alert` (to admins);"
        " a kind left out sends"
        " nothing; see"
        " [Notifications](#notifications)",
        shown_default="the emulator's templates (`emu_reward`, …) when `WECHAT_APPID` is unset, none otherwise",
    )
    notify_rate_limit: int = setting(
        "NOTIFY_RATE_LIMIT",
        _SENDER.rate_limit,
        "at most this many subscribe messages in any window of `NOTIFY_RATE_WINDOW_SECONDS`, across all processes",
        lo=1,
        hi=1_000_000,
    )
    notify_rate_window_seconds: int = setting(
        "NOTIFY_RATE_WINDOW_SECONDS",
        _SENDER.rate_window_seconds,
        "the window of `NOTIFY_RATE_LIMIT`, seconds",
        lo=1,
        hi=86_400,
    )
    notify_max_attempts: int = setting(
        "NOTIFY_MAX_ATTEMPTS",
        _SENDER.max_attempts,
        "sends of one message WeChat answered with a transient error (`-1`, `45009`, `45011`, token) before it"
        " is `failed`",
        lo=1,
        hi=100,
    )
    notify_retry_seconds: float = setting(
        "NOTIFY_RETRY_SECONDS",
        _SENDER.retry_seconds,
        "wait before the first retry of a message, seconds, doubling after each",
        lo=0.0,
        hi=86_400.0,
    )
    notify_ending_hours: int = setting(
        "NOTIFY_ENDING_HOURS",
        24,
        "participants still in a campaign hear it ends this many hours before `ends_at` (`0`: never)",
        lo=0,
        hi=24 * 365,
    )
    notify_utc_offset_minutes: int = setting(
        "NOTIFY_UTC_OFFSET_MINUTES",
        _SENDER.utc_offset_minutes,
        "the offset times in messages are shown in, minutes (China: UTC+8)",
        lo=-720,
        hi=840,
    )
    notify_batch: int = setting(
        "NOTIFY_BATCH", _SENDER.batch, "outbox rows one sender pass reads at a time", lo=1, hi=10_000
    )
    risk_refuse_rank: int = setting(
        "RISK_REFUSE_RANK",
        _RISK.refuse_at,
        "a social action (help, group join, draw) is `403 risk_refused` for a customer WeChat's"
        " `getuserriskrank` ranks at or above this (ranks run 0-4; `5`: refuse nobody)",
        lo=0,
        hi=5,
    )
    risk_cache_seconds: int = setting(
        "RISK_CACHE_SECONDS", _RISK.cache_seconds, "how long a customer's risk rank is reused, seconds", lo=1, hi=86_400
    )
    risk_when_unranked: WhenUnranked = setting(
        "RISK_WHEN_UNRANKED",
        _RISK.when_unranked,
        "a customer WeChat gives no risk rank for (no visit in two hours, WeChat unreachable): `allow` or `refuse`",
    )
    webhook_interval: float = setting(
        "WEBHOOK_INTERVAL",
        1.0,
        "seconds between webhook delivery passes (one elected process delivers; see [Webhooks](docs/webhooks.md))",
        lo=0.05,
        hi=3600.0,
    )
    webhook_timeout: float = setting(
        "WEBHOOK_TIMEOUT", _DELIVERY.timeout_seconds, "seconds an endpoint has to answer a delivery", lo=0.1, hi=120.0
    )
    webhook_retry_seconds: float = setting(
        "WEBHOOK_RETRY_SECONDS",
        _DELIVERY.retry_base_seconds,
        "wait before the first retry of a failed delivery, seconds, doubling after each (×0.5–1.5 jitter)",
        lo=0.0,
        hi=86_400.0,
    )
    webhook_retry_max_seconds: float = setting(
        "WEBHOOK_RETRY_MAX_SECONDS",
        _DELIVERY.retry_max_seconds,
        "the longest wait between two attempts of a delivery, seconds (before jitter)",
        lo=0.0,
        hi=7 * 86_400.0,
    )
    webhook_pause_after: int = setting(
        "WEBHOOK_PAUSE_AFTER",
        _DELIVERY.pause_after,
        "consecutive failed deliveries after which an endpoint is paused and an `alert.raised` sent",
        lo=1,
        hi=100_000,
    )
    webhook_batch: int = setting(
        "WEBHOOK_BATCH", _DELIVERY.batch, "outbox events and deliveries one webhook pass reads at most", lo=1, hi=10_000
    )
    alert_interval: float = setting(
        "ALERT_INTERVAL",
        float(_ALERTS.interval_seconds),
        "seconds between alert evaluation passes (one process at a time; see [Alerts](docs/webhooks.md#alerts))",
        lo=1.0,
        hi=86_400.0,
    )
    alert_budget_horizon_hours: float = setting(
        "ALERT_BUDGET_HORIZON_HOURS",
        _ALERTS.budget_horizon_hours,
        "`budget_runout` is raised only when the projected run-out is this many hours away or nearer"
        " (0: any time before the campaign ends); a campaign may override it",
        lo=0.0,
        hi=8_760.0,
    )
    alert_redemption_days: int = setting(
        "ALERT_REDEMPTION_DAYS",
        _ALERTS.days,
        "days before the last 24 hours whose daily average the redemption spike and drop rules compare with",
        lo=1,
        hi=90,
    )
    alert_redemption_spike_factor: float = setting(
        "ALERT_REDEMPTION_SPIKE_FACTOR",
        _ALERTS.spike_factor,
        "a campaign's redemptions in the last 24 hours above this many times its daily average raise"
        " `redemption_spike`",
        lo=1.0,
        hi=1000.0,
    )
    alert_redemption_drop_factor: float = setting(
        "ALERT_REDEMPTION_DROP_FACTOR",
        _ALERTS.drop_factor,
        "redemptions in the last 24 hours below the daily average divided by this raise `redemption_drop`",
        lo=1.0,
        hi=1000.0,
    )
    alert_redemption_min_baseline: float = setting(
        "ALERT_REDEMPTION_MIN_BASELINE",
        _ALERTS.min_baseline,
        "the least daily average of redemptions the spike and drop rules judge (fewer: too noisy)",
        lo=0.0,
        hi=1_000_000.0,
    )
    alert_notify_failures: int = setting(
        "ALERT_NOTIFY_FAILURES",
        _ALERTS.notify_failures,
        "failed notifications in the last hour that raise `notify_failures`",
        lo=1,
        hi=10_000_000,
    )
    alert_claims_backlog_seconds: float = setting(
        "ALERT_CLAIMS_BACKLOG_SECONDS",
        _ALERTS.claims_backlog_seconds,
        "age of the oldest claim not yet written to the database that raises `claims_backlog`, seconds",
        lo=1.0,
        hi=86_400.0,
    )

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of METRICS_LISTEN, or None."""
        if self.metrics_listen is None:
            return None
        host, sep, port = self.metrics_listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(f"METRICS_LISTEN must be host:port, got {self.metrics_listen!r}")
        return host.strip("[]"), int(port)

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
        """Read and validate settings; raise SettingsError naming the first bad one.

        ``overrides`` (attribute names) replace values after the environment is read, so
        they do not change derived defaults, and are checked by ``validate`` only."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for one in declared_of(Settings):
            values[one.attr] = one.parse(env, values)
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
        for one in declared_of(Settings):
            value = getattr(self, one.attr)
            if one.choices and value not in one.choices:
                raise choices_error(one.spec.env, one.choices, value)
        if not self.database_url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise SettingsError("DATABASE_URL must be a sqlite:// or postgres:// URL")
        self.metrics_address  # noqa: B018 -- parsed for its errors
        if self.metrics_token is not None and len(self.metrics_token) < 16:
            raise SettingsError("METRICS_TOKEN must be at least 16 characters")
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
