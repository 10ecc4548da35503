"""The example deployment files in deploy/ are what docs/operations.md says they are:
a systemd unit that runs ``python -m server --workers N`` and stops it gracefully, an
nginx site that forwards to it with the request id and keeps /metrics inside, and a
Prometheus scrape job. Parsed here (and ``nginx -t`` when nginx is installed)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit() -> configparser.RawConfigParser:
    # systemd allows repeated keys (Environment=): keep them all, as systemd does.
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / "wxcampaign.service").read_text())
    return parser


def test_the_systemd_unit() -> None:
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert re.fullmatch(r"\S+/python -m server --workers \d+", service["ExecStart"])
    assert service["ExecStartPre"].endswith("-m server migrate")
    # SIGTERM to the parent only; it drains the children (server/supervisor.py).
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 30  # the supervisor's grace for the children
    assert service["EnvironmentFile"] == "/etc/wxcampaign/env"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    text = (DEPLOY / "wxcampaign.service").read_text()
    assert "Environment=LOG_FORMAT=json" in text


def _blocks(text: str) -> list[str]:
    """The nginx configuration's statements, each ending in ``;``, ``{`` or ``}``; raises
    on unbalanced braces or a statement left open."""
    text = re.sub(r"#.*", "", text)
    tokens = re.findall(r"[^;{}\s][^;{}]*?(?=[;{}])[;{]|}", text)
    depth = 0
    for token in tokens:
        depth += token.endswith("{") - (token == "}")
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "a { is never closed"
    rest = re.sub(r"[^;{}\s][^;{}]*?[;{]|}", "", text).strip()
    assert rest == "", f"not a statement: {rest[:60]!r}"
    return [" ".join(t.split()) for t in tokens]


def test_the_nginx_site_structure() -> None:
    statements = _blocks((DEPLOY / "nginx.conf").read_text())
    assert "upstream wxcampaign {" in statements
    assert "server 127.0.0.1:8080;" in statements
    assert statements.count("proxy_pass http://wxcampaign;") == 2
    assert "proxy_set_header X-Request-ID $request_id;" in statements
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in statements
    metrics = statements.index("location = /metrics {")
    assert statements[metrics + 1] == "return 404;"


_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None, reason="nginx not installed")
def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=campaigns.example.com",
         "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    site = (DEPLOY / "nginx.conf").read_text()
    site = site.replace("/etc/ssl/certs/campaigns.example.com.pem", str(cert))
    site = site.replace("/etc/ssl/private/campaigns.example.com.key", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log; events {{}}\n"
        # Temporary directories under tmp_path: an nginx binary without nginx-common (the
        # one scripts/test fetches) has no /var/lib/nginx.
        f"http {{ access_log off; {' '.join(f'{kind}_temp_path {tmp_path}/{kind};' for kind in _TEMPS)}\n"
        f"include {tmp_path}/site.conf; }}\n"
    )
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_prometheus_job() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "wxcampaign"
    assert job["static_configs"][0]["targets"]
