"""Settings read from the environment once, validated at start-up.

Each setting is declared once, as a field of :class:`Settings`: its attribute name, its
type (the annotation), its default, its environment variable, its range and its help
text (:func:`setting`). ``Settings.from_env`` reads them from that declaration, and the
README's configuration table is generated from it (``python -m server settings-table``;
tests/test_settings_table.py fails when the two differ). Defaults that a domain policy
also needs (the feed weights, the grab throttle, the notification sender's pace, ...) are
taken from that policy's own defaults, so each value is written in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal

from services.feed import FeedPolicy
from services.journey import JourneyPolicy
from services.notify import NotifyTemplates, SenderPolicy, TemplateConfigError, default_templates_json, parse_templates
from services.stock import GrabPolicy

AppEnv = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

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


# --- the declaration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """How one field of :class:`Settings` is read from the environment and documented."""

    #: The environment variable.
    env: str
    #: The meaning, in the README table's markdown.
    help: str
    #: The inclusive range of a number (required for int and float settings).
    lo: float | None = None
    hi: float | None = None
    #: A default computed from settings declared earlier (their parsed values by attribute).
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    #: The default as the table shows it, when the bare value would mislead.
    shown_default: str | None = None
    #: Applied to a raw value before it is checked (LOG_LEVEL is case-insensitive).
    normalize: Callable[[str], str] | None = None


def setting(
    env: str,
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    derive: Callable[[Mapping[str, Any]], Any] | None = None,
    shown_default: str | None = None,
    normalize: Callable[[str], str] | None = None,
    repr: bool = True,
) -> Any:
    """A :class:`Settings` field: ``default`` is the value without the variable (and of
    ``Settings()``); ``derive``, when given, computes it in ``from_env`` instead."""
    spec = Setting(env, help, lo, hi, derive, shown_default, normalize)
    return field(default=default, repr=repr, metadata={"setting": spec})


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of a variable; None when unset or blank."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def _parse_int(name: str, raw: str, lo: float, hi: float) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {_number(lo)} and {_number(hi)}, got {value}")
    return value


def _parse_float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choices_error(name: str, choices: tuple[str, ...], value: object) -> SettingsError:
    listed = ", ".join(choices[:-1]) + " or " + choices[-1]
    return SettingsError(f"{name} must be {listed}, got {value!r}")


def _number(value: float) -> str:
    """A number as written in messages and the table: 5.0 as 5, 1.5 as 1.5."""
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Declared:
    """One setting with its attribute, type and default: what parsing and the table need."""

    attr: str
    kind: type  # bool, int, float, str or Path
    optional: bool  # None is a value (unset)
    choices: tuple[str, ...]  # a Literal type's values, else ()
    default: Any
    spec: Setting

    def parse(self, env: Mapping[str, str], parsed: Mapping[str, Any]) -> Any:
        """This setting's value from ``env``; ``parsed`` holds those declared before it."""
        spec = self.spec
        raw = _raw(env, spec.env)
        if raw is None:
            return spec.derive(parsed) if spec.derive is not None else self.default
        if spec.normalize is not None:
            raw = spec.normalize(raw)
        if self.choices and raw not in self.choices:
            raise _choices_error(spec.env, self.choices, raw)
        if self.kind is bool:
            return _parse_bool(spec.env, raw)
        if self.kind is int:
            assert spec.lo is not None and spec.hi is not None
            return _parse_int(spec.env, raw, spec.lo, spec.hi)
        if self.kind is float:
            assert spec.lo is not None and spec.hi is not None
            return _parse_float(spec.env, raw, spec.lo, spec.hi)
        if self.kind is Path:
            return Path(raw)
        return raw


def _kind(hint: Any) -> tuple[type, bool, tuple[str, ...]]:
    """(base type, optional, choices) of a Settings annotation."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        [base] = [a for a in args if a is not type(None)]
        kind, _, choices = _kind(base)
        return kind, True, choices
    if typing.get_origin(hint) is Literal:
        return str, False, tuple(args)
    if hint in (bool, int, float, str, Path):
        return hint, False, ()
    raise TypeError(f"unsupported setting type {hint!r}")


@cache
def declared() -> tuple[Declared, ...]:
    """Every setting in declaration order (the order ``from_env`` reads them in)."""
    hints = typing.get_type_hints(Settings)
    out = []
    for f in fields(Settings):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        kind, optional, choices = _kind(hints[f.name])
        if kind in (int, float) and (spec.lo is None or spec.hi is None):
            raise TypeError(f"setting {spec.env} needs a range")
        out.append(Declared(f.name, kind, optional, choices, f.default, spec))
    return tuple(out)


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
    # None = DATA_DIR/media (media_dir).
    media_root: Path | None = setting(
        "MEDIA_ROOT",
        None,
        "where uploaded campaign images (banners, posters) are stored",
        shown_default="`$DATA_DIR/media`",
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
    notify_templates: str | None = setting(
        "NOTIFY_TEMPLATES",
        None,
        'JSON `{kind: {"template_id", "page"?, "fields": {keyword: text}}}` for the kinds `new_campaign`,'
        " `campaign_ending`, `reward`, `voucher_expiring`; a kind left out sends nothing; see"
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
        for one in declared():
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
        for one in declared():
            value = getattr(self, one.attr)
            if one.choices and value not in one.choices:
                raise _choices_error(one.spec.env, one.choices, value)
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


# --- the README's table --------------------------------------------------------------------

#: The README holds the generated table between these lines.
TABLE_BEGIN = "<!-- settings-table:begin -->"
TABLE_END = "<!-- settings-table:end -->"
#: What regenerates it (named by the test that compares the two).
TABLE_COMMAND = "python -m server settings-table --write README.md"


def _shown_default(one: Declared) -> str:
    if one.spec.shown_default is not None:
        return one.spec.shown_default
    value = one.default
    if value is None:
        return "*(unset)*"
    if value == "":
        return "*(none)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _shown_range(one: Declared) -> str:
    if one.choices:
        return ", ".join(f"`{c}`" for c in one.choices)
    if one.kind is bool:
        return "`true`, `false`"
    if one.spec.lo is not None and one.spec.hi is not None:
        return f"{_number(one.spec.lo)}–{_number(one.spec.hi)}"
    return ""


def settings_table() -> str:
    """The markdown table of every setting, in declaration order (no trailing newline)."""
    rows = ["| name | default | range | meaning |", "|---|---|---|---|"]
    for one in declared():
        cells = (f"`{one.spec.env}`", _shown_default(one), _shown_range(one), one.spec.help)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def table_block() -> str:
    """What a document holds between the markers: a do-not-edit note and the table."""
    return f"<!-- generated from server/settings.py by `{TABLE_COMMAND}`: edit the declarations -->\n" + (
        settings_table()
    )


def table_in(document: str) -> str | None:
    """The text between the table markers of a document (stripped), None without them."""
    begin, end = document.find(TABLE_BEGIN), document.find(TABLE_END)
    if begin < 0 or end < begin:
        return None
    return document[begin + len(TABLE_BEGIN) : end].strip()


def with_table(document: str) -> str:
    """``document`` with the generated table between its markers.

    Precondition: the document holds both markers, begin first (SettingsError otherwise)."""
    begin, end = document.find(TABLE_BEGIN), document.find(TABLE_END)
    if begin < 0 or end < begin:
        raise SettingsError(f"no {TABLE_BEGIN} ... {TABLE_END} lines to put the settings table between")
    return document[: begin + len(TABLE_BEGIN)] + "\n" + table_block() + "\n" + document[end:]
