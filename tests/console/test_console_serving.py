"""The console's pages and assets served by the API's own server (handlers/public/console.py):
the index never cached, hashed assets cached for a year, client routes answered with the
page, and a clear 503 while the console is not built (the API runs regardless).

These use a small stand-in build in a temporary CONSOLE_DIR, so they need no Node;
tests/console/test_till.py drives the real build in Chromium."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from server import cli
from tests.helpers import error_of

INDEX_NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A console build as Vite lays it out: a folder per page, shared hashed assets."""
    dist = tmp_path / "dist"
    for page in ("admin", "staff"):
        (dist / page).mkdir(parents=True)
        (dist / page / "index.html").write_text(f"<!doctype html><title>{page}</title>", encoding="utf-8")
    (dist / "assets").mkdir()
    (dist / "assets" / "admin-Ab12_x.js").write_text("console.log('admin')")
    (dist / "assets" / "admin-Cd34.css").write_text("body{}")
    # What scripts/console-build writes beside each file.
    (dist / "assets" / "admin-Cd34.css.gz").write_bytes(gzip.compress(b"body{}"))
    return dist


async def test_each_page_is_its_index_for_every_client_route_and_never_cached(client_with, built):
    client = await client_with(console_dir=built)
    for page in ("admin", "staff"):
        for path in (f"/{page}/", f"/{page}/campaigns", f"/{page}/campaigns/12/edit"):
            resp = await client.get(path)
            assert resp.status == 200, path
            assert resp.headers["Cache-Control"] == INDEX_NO_CACHE, path
            assert resp.content_type == "text/html"
            assert await resp.text() == f"<!doctype html><title>{page}</title>", path
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        bare = await client.get(f"/{page}", allow_redirects=False)
        assert bare.status == 301 and bare.headers["Location"] == f"/{page}/"


async def test_hashed_assets_are_cached_for_a_year(client_with, built):
    client = await client_with(console_dir=built)
    resp = await client.get("/console/assets/admin-Ab12_x.js")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == IMMUTABLE
    assert resp.content_type in ("text/javascript", "application/javascript")
    assert await resp.text() == "console.log('admin')"
    css = await client.get("/console/assets/admin-Cd34.css", headers={"Accept-Encoding": "gzip"})
    assert css.status == 200 and css.content_type == "text/css" and css.headers["Cache-Control"] == IMMUTABLE
    # The compressed copy, sent as it is (the client decompresses it).
    assert css.headers["Content-Encoding"] == "gzip" and await css.text() == "body{}"
    plain = await client.get("/console/assets/admin-Cd34.css", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and await plain.read() == b"body{}"


async def test_missing_files_are_404_not_the_page(client_with, built):
    client = await client_with(console_dir=built)
    for path in (
        "/console/assets/admin-gone.js",
        "/console/assets/..%2Fadmin%2Findex.html",
        "/console/assets/.hidden",
        "/admin/favicon.ico",
        "/staff/assets/old-123.js",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await error_of(resp))["code"] == "not_found", path
        assert "max-age" not in resp.headers.get("Cache-Control", ""), path


async def test_not_built_is_a_clear_503_and_the_api_still_runs(client_with, tmp_path):
    client = await client_with(console_dir=tmp_path / "nowhere")
    resp = await client.get("/admin/campaigns")
    assert resp.status == 503
    error = await error_of(resp)
    assert error["code"] == "console_not_built"
    assert "Node" in error["message"] and "scripts/serve" in error["message"]
    page = await client.get("/staff/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status == 503 and page.content_type == "text/html"
    text = await page.text()
    assert "the console is not built" in text and text.count("\n") == 1
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/console/assets/admin-Ab12_x.js")).status == 404


def test_openapi_command_prints_the_served_document(tmp_path, capsys):
    """`python -m server openapi` is what scripts/console-build types the console from."""
    target = tmp_path / "openapi.json"
    assert cli.main(["openapi", "--write", str(target)]) == 0
    document = json.loads(target.read_text())
    assert "/api/v1/staff/redemptions/preview" in document["paths"]
    assert document["info"]["title"] == "WeChat campaign backend"
    assert cli.main(["openapi"]) == 0
    assert json.loads(capsys.readouterr().out) == document
