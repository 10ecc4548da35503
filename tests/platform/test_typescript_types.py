"""TypeScript types generated from the OpenAPI document with ``openapi-typescript`` (the
second generator issue 14 named): it runs without error and declares the routes a
mini-program front end calls first (login, grab, the staff preview).

The tool is pinned in ``tools/openapi-ts/package-lock.json``; ``npm ci`` installs it there
when it is missing or older than the lock file (about 10 s once), so later runs take a
second or two. Node 20 and npm must be on PATH: ``scripts/test`` installs them with apt
when missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from handlers import all_routes
from server.openapi import build_openapi

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "openapi-ts"
TOOL = TOOL_DIR / "node_modules" / ".bin" / "openapi-typescript"
LOCK = TOOL_DIR / "package-lock.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # What create_app serves at /api/openapi.json (as test_openapi_document.py builds it).
    return build_openapi(all_routes().routes, title="t", version="0")


def _ensure_tool() -> Path:
    """The pinned openapi-typescript, installed with ``npm ci`` when missing or stale.

    Precondition: ``npm`` is on PATH (fails with one line saying so otherwise; the suite
    skips nothing).
    """
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: install Node 20 and npm (scripts/test does it with apt)", pytrace=False)
    # A lock file newer than the install means the pin changed since: reinstall from it.
    if not TOOL.exists() or TOOL.stat().st_mtime < LOCK.stat().st_mtime:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(TOOL_DIR)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        # npm ci keeps the bin link's old mtime when the package is unchanged: mark it fresh.
        TOOL.touch()
    return TOOL


def test_openapi_typescript_generates_types(document: dict[str, Any], tmp_path: Path) -> None:
    tool = _ensure_tool()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    out = tmp_path / "api.d.ts"
    done = subprocess.run(
        [str(tool), str(tmp_path / "openapi.json"), "-o", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    types = out.read_text()
    for path in (
        '"/api/v1/auth/wechat/login"',
        '"/api/v1/coupons/{coupon_id}/grab"',
        '"/api/v1/staff/auth/login"',
        '"/api/v1/staff/redemptions/preview"',
    ):
        assert f"{path}: {{" in types, path
    for component in ("GrabOut", "RedemptionPreviewOut", "CustomerTokenOut", "StaffTokenOut"):
        assert f"    {component}: {{" in types, component
