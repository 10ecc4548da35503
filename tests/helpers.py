"""Small helpers the tests share: minting codes on the emulator, logging in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from tortoise import connections


async def login_code(client: TestClient, openid: str, unionid: str | None = None) -> str:
    body: dict[str, Any] = {"openid": openid}
    if unionid is not None:
        body["unionid"] = unionid
    resp = await client.post("/_wechat/login-code", json=body)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["code"]


async def customer_login(client: TestClient, openid: str = "o_alice", unionid: str | None = None) -> dict[str, Any]:
    code = await login_code(client, openid, unionid)
    resp = await client.post("/api/v1/auth/wechat/login", json={"code": code})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: Any) -> dict[str, Any]:
    """The error object of a response, after checking it has the one documented shape."""
    assert resp.content_type == "application/json", resp.content_type
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def fault(client: TestClient, path: str, **effect: Any) -> None:
    """Arm an emulator fault on a WeChat path (errcode=, delay=, drop=, times=)."""
    resp = await client.post("/_wechat/faults", json={"path": path, **effect})
    assert resp.status == 200, await resp.text()


async def wechat_calls(client: TestClient) -> dict[str, int]:
    resp = await client.get("/_wechat/calls")
    return await resp.json()


async def create_admin(username: str, password: str, role: str) -> Any:
    """An admin row made by the real service (the ORM is open while the ``client`` fixture runs)."""
    from services.accounts import operators as accounts

    return await accounts.create_admin(username, password, role)


async def admin_login(client: TestClient, username: str, password: str) -> dict[str, Any]:
    resp = await client.post("/api/v1/admin/auth/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def logged_in_admin(client: TestClient, role: str, username: str | None = None) -> dict[str, Any]:
    """A fresh admin of ``role``, logged in over HTTP: the login answer (tokens + ``admin``)."""
    username = username or f"{role}-admin"
    password = f"pw-{username}-0123456789"
    await create_admin(username, password, role)
    return await admin_login(client, username, password)


def cheap_password_hashing(monkeypatch: Any) -> None:
    """Still Argon2id, with the smallest cost, so tests that create and log in many accounts
    stay fast. The production cost is checked on an account made by the CLI (a subprocess,
    untouched by this)."""
    from argon2 import PasswordHasher

    from services.accounts import passwords

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("dummy-password-for-timing"))


def collect_sockets_of_a_stopped_app() -> None:
    """After a test stops an app with requests in flight (a crash on purpose), the sockets
    those requests held are only closed when collected; collect them here, where their
    ResourceWarning is expected, not in whichever later test the collector happens to run."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@dataclass
class RowCount:
    """The most rows one SQL statement answered since :func:`count_rows` began, and how
    many statements answered rows (queries, counts, updates: ``execute_query``)."""

    most: int = 0
    statements: int = 0
    #: The most rows of one statement answering more than one column: rows read whole,
    #: not a column of ids.
    most_wide: int = 0


def count_rows(monkeypatch: pytest.MonkeyPatch) -> RowCount:
    """A spy on the default database connection that calls through to the real database:
    it only counts the rows each statement answers (for the tests that a page reads a
    page of rows, not a table), and the statements."""
    conn = connections.get("default")
    real_execute = type(conn).execute_query
    count = RowCount()

    async def counting(self: Any, query: str, values: list[Any] | None = None) -> Any:
        result = await real_execute(self, query, values)
        count.most = max(count.most, len(result[1]))
        if result[1] and len(result[1][0]) > 1:
            count.most_wide = max(count.most_wide, len(result[1]))
        count.statements += 1
        return result

    monkeypatch.setattr(type(conn), "execute_query", counting)
    return count
