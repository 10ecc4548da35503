"""The browser harness: the real server (Redis, the database, the built console) driven by
Debian's Chromium through Playwright's async API, on the test's own event loop.

- ``console_dist``: the console built by ``scripts/console-build`` (npm ci / build only
  when missing or stale; a few seconds when up to date). Needs Node 20 and npm.
- ``console``: the app on a loopback port serving that build; ``console.url("/staff/")``.
- ``browser``: Chromium from ``PATH`` (``apt-get install chromium``: Playwright cannot
  download its own browsers here), headless.
- ``shoot(page, name)``: a full-page screenshot in ``test-artifacts/console/`` (gitignored),
  kept as the run's artefacts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import cheap_password_hashing

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - requirements-dev.txt has it
    pytest.fail("playwright is not installed: pip install -r requirements-dev.txt", pytrace=False)


@pytest.fixture(scope="session")
def console_dist() -> Path:
    """The built console, (re)built when missing or stale, as ./scripts/serve does."""
    if shutil.which("npm") is None:
        pytest.fail("npm not found: install Node 20 and npm (scripts/test does it with apt)", pytrace=False)
    done = subprocess.run(
        [str(ROOT / "scripts" / "console-build")], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHON_BIN": str(ROOT / ".venv" / "bin" / "python")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    dist = ROOT / "console" / "dist"
    assert (dist / "staff" / "index.html").is_file() and (dist / "admin" / "index.html").is_file()
    return dist


@dataclass
class Console:
    """The running server with the console: its API client and its base URL."""

    client: TestClient

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))


@pytest.fixture
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def console_settings() -> dict[str, Any]:
    """Settings the ``console`` app runs with besides CONSOLE_DIR (override in a module)."""
    return {}


@pytest.fixture
async def console(
    client_with: Callable[..., Awaitable[TestClient]],
    console_dist: Path,
    console_settings: dict[str, Any],
    _fast_hashing: None,
) -> Console:
    return Console(await client_with(console_dir=console_dist, **console_settings))


@pytest.fixture
def browser_args() -> list[str]:
    """Extra Chromium flags (a module overrides it: a fake camera, say)."""
    return []


@pytest.fixture
async def browser(browser_args: list[str]) -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium not found: apt-get install -y chromium (scripts/test does it)", pytrace=False)
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=executable, args=["--no-sandbox", *browser_args])
        try:
            yield launched
        finally:
            await launched.close()


#: A phone at the till (the narrowest width the pages must work at) and a desktop.
PHONE: dict[str, Any] = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "has_touch": True}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}


async def new_page(browser: Browser, **context: Any) -> Page:
    """A page in a fresh context (its own localStorage: its own session); errors the page
    logs to the console fail nothing by themselves but are kept on ``page.errors``."""
    ctx = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **context)
    ctx.set_default_timeout(15_000)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]  # kept on the page for the test to assert on
    return page


async def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot saved as test-artifacts/console/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
