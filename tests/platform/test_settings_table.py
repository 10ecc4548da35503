"""Each setting is declared once (server/settings.py); the README's configuration table is
generated from that declaration and must not drift from it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from server.cli import main
from server.setting_spec import declared_of
from server.settings import Settings, SettingsError
from server.settings_table import (
    TABLE_BEGIN,
    TABLE_COMMAND,
    TABLE_END,
    settings_table,
    table_block,
    table_in,
    with_table,
)

ROOT = Path(__file__).resolve().parents[2]


def _documents_with_table() -> list[Path]:
    """The README (or, once the manual moves to docs/, the page) holding the table."""
    candidates = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in candidates if p.is_file() and TABLE_BEGIN in p.read_text(encoding="utf-8")]


def test_readme_table_is_the_declarations():
    holders = _documents_with_table()
    assert holders, f"no document holds the {TABLE_BEGIN} ... {TABLE_END} lines: add them, then run {TABLE_COMMAND}"
    assert len(holders) == 1, f"the settings table is in more than one document: {holders}"
    [holder] = holders
    shown = table_in(holder.read_text(encoding="utf-8"))
    expected = table_block()
    if shown != expected:
        first_cells = [row.split("|")[1] for row in (shown or "").splitlines() if row.count("|") > 2]
        named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", " ".join(first_cells)))
        missing = [one.spec.env for one in declared_of(Settings) if one.spec.env not in named]
        changed = [row.split("`")[1] for row in expected.splitlines()[3:] if row not in (shown or "").splitlines()]
        pytest.fail(
            f"{holder.relative_to(ROOT)}'s configuration table differs from server/settings.py"
            f" (missing rows: {missing}; rows that differ: {changed}); regenerate it:"
            f" {TABLE_COMMAND.replace('README.md', str(holder.relative_to(ROOT)))}"
        )


def test_a_missing_row_is_noticed():
    document = with_table(f"# Configuration\n\n{TABLE_BEGIN}\n{TABLE_END}\n\nmore text\n")
    assert table_in(document) == table_block() and document.endswith(f"{TABLE_END}\n\nmore text\n")
    dropped = "\n".join(line for line in document.splitlines() if "`NOTIFY_BATCH`" not in line)
    assert table_in(dropped) != table_block()
    with pytest.raises(SettingsError, match="settings-table"):
        with_table("no markers")


def test_every_field_is_a_declared_setting():
    """One declaration per setting: every field has its variable (its name upper-cased),
    its help text, and a number has a range its default lies in."""
    by_attr = {one.attr: one for one in declared_of(Settings)}
    assert list(by_attr) == [f.name for f in dataclasses.fields(Settings)]
    for one in declared_of(Settings):
        assert one.spec.env == one.attr.upper(), one.attr
        assert one.spec.help and "|" not in one.spec.help, one.attr
        if one.kind in (int, float):
            assert one.spec.lo is not None and one.spec.hi is not None
            assert one.spec.lo <= one.default <= one.spec.hi, one.attr
    assert settings_table().count("\n") == len(declared_of(Settings)) + 1


def test_defaults_are_unchanged():
    """The values the server ran with before the declaration was restructured."""
    defaults = Settings.from_env({})
    assert dataclasses.asdict(defaults) == {
        "app_env": "development", "host": "127.0.0.1", "port": 8080, "data_dir": Path("data"),
        "database_url": "sqlite://data/app.sqlite3", "redis_url": None, "redis_cluster": False,
        "secret_key": "dev-insecure-secret-change-me-0123456789abcdef", "auto_migrate": True,
        "wechat_appid": None, "wechat_secret": None, "wechat_api_base": None, "wechat_timeout": 5.0,
        "wechat_max_retries": 2, "access_token_ttl": 900, "refresh_token_ttl": 2592000,
        "max_body_bytes": 1048576, "login_max_failures": 5, "login_lockout_seconds": 900,
        "trusted_proxy_hops": 0, "log_level": "INFO", "log_format": "text", "workers": 1, "metrics_token": None,
        "metrics_listen": None, "ready_claims_max_age": 60.0, "media_root": None,
            "console_dir": Path(__file__).resolve().parents[2] / "console" / "dist", "max_upload_bytes": 5242880,
        "review_levels": 1, "copy_edits_skip_review": True, "scheduler_interval": 5.0, "run_workers": True,
        "loop_stall_ms": 100, "gc_freeze": True, "uvloop": True,
        "grab_user_max": 10, "grab_user_window_ms": 10000, "grab_ip_rate": 100.0,
        "grab_ip_burst": 200, "claims_batch": 500, "claims_min_idle_ms": 30000, "qr_ttl_seconds": 60,
        "qr_signing_keys": None, "qr_retired_keys": "", "redemption_reverse_window_seconds": 1800,
        "voucher_expiry_interval": 300, "voucher_reminder_hours": 72, "automation_inactive_interval": 3600,
        "retention_interval": 3600, "tracking_retention_days": 90, "outbox_retention_days": 30,
        "idempotency_retention_days": 7, "retention_batch": 1000,
        "points_per_yuan": 1, "integration_max_skew": 300, "attribution_window_days": 7, "points_cost_fen": 1,
        "integration_secret_grace": 86400,
        "feed_weight_audience": 3.0,
        "feed_weight_interest": 2.0, "feed_weight_behaviour": 1.5, "feed_weight_store": 2.0,
        "feed_weight_distance": 2.0, "feed_weight_ending": 1.0, "feed_weight_popularity": 1.0,
        "feed_weight_joined": -2.0, "feed_near_km": 5.0, "feed_ending_soon_days": 3,
        "feed_cache_seconds": 60.0, "feed_audience_ttl": 300, "feed_ranking_seconds": 10.0,
        "feed_ranking_entries": 2000, "feed_profile_seconds": 3600.0,
        "feed_membership_seconds": 60.0, "notify_templates": None, "notify_rate_limit": 600,
        "notify_rate_window_seconds": 60, "notify_max_attempts": 5, "notify_retry_seconds": 30.0,
        "notify_ending_hours": 24, "notify_utc_offset_minutes": 480, "notify_batch": 100,
        "risk_refuse_rank": 3, "risk_cache_seconds": 300, "risk_when_unranked": "allow",
        "webhook_interval": 1.0, "webhook_timeout": 10.0, "webhook_retry_seconds": 10.0,
        "webhook_retry_max_seconds": 3600.0, "webhook_pause_after": 20, "webhook_batch": 200,
        "alert_interval": 60.0, "alert_redemption_days": 7, "alert_redemption_spike_factor": 3.0,
        "alert_redemption_drop_factor": 3.0, "alert_redemption_min_baseline": 10.0, "alert_notify_failures": 50,
        "alert_claims_backlog_seconds": 60.0, "alert_budget_horizon_hours": 0.0,
    }  # fmt: skip
    assert Settings() == defaults  # the dataclass defaults are the same declaration
    # Derived defaults follow the settings they derive from.
    assert Settings.from_env({"DATA_DIR": "/srv/x"}).database_url == "sqlite:///srv/x/app.sqlite3"
    assert Settings.from_env({"LOG_LEVEL": " debug "}).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000"),
        ({"PORT": "x"}, "PORT must be an integer, got 'x'"),
        ({"WECHAT_TIMEOUT": "0"}, "WECHAT_TIMEOUT must be between 0.1 and 60.0, got 0.0"),
        ({"FEED_WEIGHT_JOINED": "-101"}, "FEED_WEIGHT_JOINED must be between -100.0 and 100.0, got -101.0"),
        ({"APP_ENV": "staging"}, "APP_ENV must be development, test or production, got 'staging'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'"),
        ({"RUN_WORKERS": "sometimes"}, "RUN_WORKERS must be true or false, got 'sometimes'"),
    ],
)
def test_messages_are_unchanged(env, message):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == message


def test_settings_table_command(tmp_path, capsys, monkeypatch):
    # Documentation needs no valid environment.
    monkeypatch.setenv("PORT", "not a port")
    assert main(["settings-table"]) == 0
    assert capsys.readouterr().out == settings_table() + "\n"
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{TABLE_BEGIN}\nold\n{TABLE_END}\nrest\n", encoding="utf-8")
    assert main(["settings-table", "--write", str(page)]) == 0
    assert table_in(page.read_text(encoding="utf-8")) == table_block()
    assert main(["settings-table", "--write", str(tmp_path / "missing.md")]) == 1
