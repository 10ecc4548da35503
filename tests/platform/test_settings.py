"""Settings are read once and validated; production refuses unsafe defaults."""

from __future__ import annotations

import asyncio

import pytest

from server.event_loop import loop_factory
from server.settings import DEFAULT_SECRET, Settings, SettingsError

GOOD_SECRET = "x" * 40
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": GOOD_SECRET,
    "DATABASE_URL": "postgres://u:p@db/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WECHAT_APPID": "wx1234567890",
    "WECHAT_SECRET": "s3cret",
    "QR_SIGNING_KEYS": "p1:" + "q" * 40,
}


def test_defaults_are_the_embedded_mode():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite://data/app.sqlite3"
    assert settings.redis_url is None
    assert settings.emulator_enabled
    assert settings.wechat_base_url == "http://127.0.0.1:8080/_wechat"
    assert settings.auto_migrate


def test_host_and_port_are_honoured():
    settings = Settings.from_env({"HOST": "0.0.0.0", "PORT": "9090"})
    assert (settings.host, settings.port) == ("0.0.0.0", 9090)
    # The emulator is reached over loopback even when listening on every address.
    assert settings.wechat_base_url == "http://127.0.0.1:9090/_wechat"


def test_a_complete_production_configuration_starts():
    settings = Settings.from_env(PRODUCTION)
    assert not settings.emulator_enabled
    assert settings.wechat_base_url == "https://api.weixin.qq.com"
    assert not settings.auto_migrate


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"WECHAT_APPID": "", "WECHAT_SECRET": ""}, "emulator"),
        ({"SECRET_KEY": DEFAULT_SECRET}, "default SECRET_KEY"),
        ({"DATABASE_URL": "sqlite://data/app.sqlite3"}, "SQLite"),
        ({"REDIS_URL": ""}, "embedded Redis"),
        ({"QR_SIGNING_KEYS": ""}, "QR_SIGNING_KEYS"),
    ],
)
def test_production_refuses_unsafe_defaults(change, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**PRODUCTION, **change})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"AUTO_MIGRATE": "maybe"}, "AUTO_MIGRATE"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"WECHAT_APPID": "wx1"}, "WECHAT_APPID"),
        ({"WECHAT_TIMEOUT": "0"}, "WECHAT_TIMEOUT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"UVLOOP": "sometimes"}, "UVLOOP"),
    ],
)
def test_bad_values_are_named(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_uvloop_when_installed_unless_turned_off():
    """UVLOOP (default on) picks the loop `python -m server` runs; off, asyncio's own."""
    assert Settings.from_env({}).uvloop and not Settings.from_env({"UVLOOP": "false"}).uvloop
    new_loop, name = loop_factory(True)
    loop = new_loop()
    try:
        assert name == "uvloop" and type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
    new_loop, name = loop_factory(False)
    loop = new_loop()
    try:
        assert name == "asyncio" and isinstance(loop, asyncio.BaseEventLoop)
        assert not type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
