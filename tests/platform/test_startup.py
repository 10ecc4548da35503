"""Starting the server for real: the entry point, migrations on start, embedded Redis,
health and readiness, and the API documentation."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from handlers import all_routes
from server.app import create_app
from server.keys import REDIS
from tests.helpers import customer_login
from tests.infra import free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_healthz_and_readyz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "claims": "ok"},
        "claims_backlog_age_seconds": 0.0,
    }


async def test_openapi_document_is_valid_and_complete(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    validate(document)  # raises on an invalid OpenAPI 3.0 document
    for route in all_routes().routes:
        assert route.method.lower() in document["paths"][route.path], route.path
        if "{" in route.path:  # an id that names nothing is a 404 (found undocumented by schemathesis)
            assert "404" in document["paths"][route.path][route.method.lower()]["responses"], route.path
    # Idempotent creates document their repeat's 200 beside the 201.
    idempotent = ["/api/v1/campaigns/{id}/join", "/api/v1/checkins", "/api/v1/integrations/events"]
    idempotent.append("/api/v1/admin/media")
    for path in idempotent:
        assert {"200", "201"} <= set(document["paths"][path]["post"]["responses"]), path
    login = document["paths"]["/api/v1/auth/wechat/login"]["post"]
    schema_name = login["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert document["components"]["schemas"][schema_name]["required"] == ["code"]
    assert "400" in login["responses"] and "503" in login["responses"]
    admin_route = document["paths"]["/api/v1/admin/stores"]["post"]
    assert admin_route["security"] == [{"bearer": []}]
    assert "403" in admin_route["responses"]


async def test_docs_page_and_its_assets_are_served_locally(client):
    resp = await client.get("/api/docs")
    assert resp.status == 200
    page = await resp.text()
    assert "/api/openapi.json" in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/api/docs/static/{asset}" in page
        resp = await client.get(f"/api/docs/static/{asset}")
        assert resp.status == 200
        assert len(await resp.read()) > 10_000


async def test_fresh_sqlite_file_is_migrated_on_start_and_redis_is_embedded(settings, tmp_path):
    """The embedded mode: no database file yet, no REDIS_URL: the app makes both."""
    fresh = dataclasses.replace(
        settings, database_url=f"sqlite://{tmp_path}/new/app.sqlite3", redis_url=None, auto_migrate=True
    )
    app = create_app(fresh)
    async with TestClient(TestServer(app, host="127.0.0.1", port=fresh.port)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 200, await resp.text()
        tokens = await customer_login(client, "o_embedded")
        assert tokens["access_token"]
        port = int(app[REDIS].connection_pool.connection_kwargs["port"])
    assert (tmp_path / "new" / "app.sqlite3").exists()
    assert (fresh.data_dir / "redis").is_dir()
    # The embedded redis-server stopped with the app.
    with_refused = False
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
    except OSError:
        with_refused = True
    assert with_refused


async def test_entry_point_serves_on_host_and_port(tmp_path):
    """`python -m server` as the README's first command runs it: prints where, then serves."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "REDIS_", "DATABASE_"))},
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(tmp_path / "data"),
        "APP_ENV": "development",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        # A ceiling against a hang, not a timing: a first start migrates a fresh database and
        # starts its Redis, 20-35 s when the 2-core machine is loaded (load 5; 30 s was marginal).
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=120)).decode()
        assert f"http://127.0.0.1:{port}" in line
        assert "event loop: uvloop" in line  # installed (requirements.txt) and UVLOOP defaults on
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            async with session.post(f"http://127.0.0.1:{port}/_wechat/login-code", json={"openid": "o_cli"}) as resp:
                code = (await resp.json())["code"]
            async with session.post(f"http://127.0.0.1:{port}/api/v1/auth/wechat/login", json={"code": code}) as resp:
                assert resp.status == 200
                assert (await resp.json())["access_token"]
        assert (tmp_path / "data" / "app.sqlite3").exists()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=15)


def test_production_mode_with_defaults_refuses_to_start(tmp_path):
    env = {**os.environ, "APP_ENV": "production", "DATA_DIR": str(tmp_path)}
    for name in ("WECHAT_APPID", "WECHAT_SECRET", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "refusing to start in production" in done.stderr
    assert "emulator" in done.stderr and "SQLite" in done.stderr


def test_migrate_command(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/m.sqlite3", "APP_ENV": "development"}
    done = subprocess.run(
        [sys.executable, "-m", "server", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "migrations applied" in done.stdout
    assert (tmp_path / "m.sqlite3").stat().st_size > 0


def test_a_taken_port_is_one_clear_error_not_a_false_listening_line(tmp_path):
    """Another process holds the port: the server says so and exits 1, after its clean-up
    (no traceback, and no "listening on" line printed before the bind failed)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "REDIS_", "DATABASE_"))},
            "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(tmp_path / "data"), "APP_ENV": "development",
        }  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1, done.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "listening on" not in done.stdout
