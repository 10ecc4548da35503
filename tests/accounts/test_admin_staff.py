"""Admin and staff accounts: creation (CLI and API), password login and its throttle,
stores, staff, and the access rule of every route."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handlers import all_routes
from models.admins import ADMIN_ROLES, Admin
from models.stores import STAFF_ROLES, StaffMember, Store
from server.access import PUBLIC
from server.settings import Settings
from services.accounts import operators as accounts
from services.core import Principal, issue_access_token, verify_access_token
from tests.helpers import (
    admin_login,
    bearer,
    cheap_password_hashing,
    create_admin,
    customer_login,
    error_of,
    logged_in_admin,
)

ROOT = Path(__file__).resolve().parents[2]
ADMIN_LOGIN = "/api/v1/admin/auth/login"
STAFF_LOGIN = "/api/v1/staff/auth/login"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


def store_body(code: str = "SH001", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "name": "Jing'an flagship", "city": "Shanghai", "latitude": 31.2304}
    body["longitude"] = 121.4737
    body.update(changes)
    return body


async def post_login(client: TestClient, path: str, username: str, password: str) -> Any:
    return await client.post(path, json={"username": username, "password": password})


async def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


def named_fields(error: dict[str, Any]) -> set[str]:
    return {item["field"] for item in error["details"].get("errors", [])}


# --------------------------------------------------------------------------- creating admins


async def test_cli_creates_the_first_superadmin_who_can_log_in(client: TestClient, settings: Settings) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": settings.database_url,
        "APP_ENV": "test",
        "REDIS_URL": settings.redis_url or "",
        "SECRET_KEY": settings.secret_key,
    }
    password = "first-superadmin-password"

    async def cli(*args: str, password: str | None = None) -> tuple[int, str, str]:
        extra = {} if password is None else {"ADMIN_PASSWORD": password}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "create-admin", *args,
            cwd=ROOT, env=env | extra, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    # Never from argv: a command line is readable by every user of the machine.
    code, out, err = await cli("--username", "root", "--password", password, "--role", "superadmin")
    assert code == 2 and "unrecognized arguments: --password" in err, (code, err)
    # No terminal to ask and no ADMIN_PASSWORD: refused, nothing created.
    code, out, err = await cli("--username", "root", "--role", "superadmin")
    assert code == 1 and "ADMIN_PASSWORD" in err, (code, err)
    # The password rules apply.
    code, out, err = await cli("--username", "root", "--role", "superadmin", password="short")
    assert code == 1 and "at least 10 characters" in err, (code, err)
    code, out, err = await cli("--username", "root", "--role", "superadmin", password="my-root-password")
    assert code == 1 and "username" in err, (code, err)
    assert not await Admin.filter(username="root").exists()

    code, out, err = await cli("--username", "root", "--role", "superadmin", password=password)
    assert code == 0, err
    assert "created admin 'root'" in out and "superadmin" in out, out
    assert password not in out + err

    row = await Admin.get(username="root")
    assert row.role == "superadmin" and row.is_active
    # Argon2id with memory-hard parameters, never the password itself.
    assert row.password_hash.startswith("$argon2id$"), row.password_hash
    assert password not in row.password_hash
    memory_kib = int(re.search(r"\$m=(\d+),", row.password_hash).group(1))  # type: ignore[union-attr]
    assert memory_kib >= 19 * 1024  # OWASP's floor for argon2id

    login = await admin_login(client, "root", password)
    assert login["admin"]["id"] == row.id and login["admin"]["role"] == "superadmin"

    # Running it again for the same name fails cleanly and changes nothing.
    code, out, err = await cli("--username", "root", "--role", "operator", password="another-password-1")
    assert code == 1, (out, err)
    assert "already exists" in err
    assert await Admin.filter(username="root").count() == 1
    assert (await Admin.get(username="root")).role == "superadmin"


async def test_api_creates_admins_with_hashed_passwords(client: TestClient) -> None:
    root = await logged_in_admin(client, "superadmin")
    headers = bearer(root["access_token"])
    password = "reviewer-password-42"
    resp = await client.post(
        "/api/v1/admin/admins", json={"username": "rita", "password": password, "role": "reviewer"}, headers=headers
    )
    assert resp.status == 201, await resp.text()
    text = await resp.text()
    assert "password" not in text and "$argon2" not in text
    body = await resp.json()
    assert body["username"] == "rita" and body["role"] == "reviewer" and body["is_active"] is True

    row = await Admin.get(username="rita")
    assert row.password_hash.startswith("$argon2id$") and password not in row.password_hash

    again = await client.post(
        "/api/v1/admin/admins", json={"username": "rita", "password": password, "role": "operator"}, headers=headers
    )
    await assert_error(again, 409, "conflict")
    bad_role = await client.post(
        "/api/v1/admin/admins", json={"username": "bob", "password": password, "role": "god"}, headers=headers
    )
    assert "role" in named_fields(await assert_error(bad_role, 422, "validation_failed"))
    assert await Admin.all().count() == 2

    operator = await admin_login(client, "rita", password)
    forbidden = await client.post(
        "/api/v1/admin/admins",
        json={"username": "eve", "password": password, "role": "superadmin"},
        headers=bearer(operator["access_token"]),
    )
    await assert_error(forbidden, 403, "forbidden")
    assert not await Admin.filter(username="eve").exists()


# --------------------------------------------------------------------------- admin login


async def test_admin_login_returns_tokens_and_the_admin(client: TestClient, settings: Settings) -> None:
    password = "operator-password-1"
    row = await create_admin("olga", password, "operator")
    resp = await post_login(client, ADMIN_LOGIN, "olga", password)
    assert resp.status == 200, await resp.text()
    # No password in any form (the password_change_required flag aside).
    text = (await resp.text()).replace('"password_change_required"', "")
    assert "password" not in text and "$argon2" not in text and password not in text
    body = await resp.json()
    keys = {"access_token", "refresh_token", "token_type", "expires_in", "admin", "password_change_required"}
    assert set(body) == keys
    assert body["password_change_required"] is False
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings.access_token_ttl
    assert body["admin"]["id"] == row.id
    assert {k: body["admin"][k] for k in ("username", "role", "is_active")} == {
        "username": "olga",
        "role": "operator",
        "is_active": True,
    }
    principal = verify_access_token(settings.secret_key, body["access_token"])
    assert principal == Principal(kind="admin", id=row.id, role="operator")

    me = await client.get("/api/v1/admin/me", headers=bearer(body["access_token"]))
    assert me.status == 200 and (await me.json())["username"] == "olga"
    assert (await Admin.get(id=row.id)).last_login_at is not None

    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status == 200, await refreshed.text()
    assert verify_access_token(settings.secret_key, (await refreshed.json())["access_token"]).role == "operator"


async def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    await create_admin("olga", "operator-password-1", "operator")
    wrong = await assert_error(
        await post_login(client, ADMIN_LOGIN, "olga", "not-the-password"), 401, "invalid_credentials"
    )
    unknown = await assert_error(
        await post_login(client, ADMIN_LOGIN, "nobody", "not-the-password"), 401, "invalid_credentials"
    )
    assert wrong == unknown
    # An admin's name is no staff account, and the other way round.
    await assert_error(await post_login(client, STAFF_LOGIN, "olga", "operator-password-1"), 401, "invalid_credentials")


async def test_lockout_after_max_failures_even_with_the_right_password(client: TestClient, settings: Settings) -> None:
    password = "operator-password-1"
    await create_admin("olga", password, "operator")
    for _ in range(settings.login_max_failures):
        await assert_error(await post_login(client, ADMIN_LOGIN, "olga", "wrong-password"), 401, "invalid_credentials")
    locked = await post_login(client, ADMIN_LOGIN, "olga", password)
    error = await assert_error(locked, 429, "too_many_attempts")
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_lockout_seconds
    assert error["details"]["retry_after"] == retry_after
    # Other accounts are not locked by this one's failures.
    await create_admin("oscar", password, "operator")
    assert (await post_login(client, ADMIN_LOGIN, "oscar", password)).status == 200


async def test_a_success_resets_the_account_counter(client: TestClient, settings: Settings) -> None:
    password = "operator-password-1"
    await create_admin("olga", password, "operator")
    almost = settings.login_max_failures - 1
    for _ in range(almost):
        await assert_error(await post_login(client, ADMIN_LOGIN, "olga", "wrong-password"), 401, "invalid_credentials")
    assert (await post_login(client, ADMIN_LOGIN, "olga", password)).status == 200
    # Without the reset, this failure would reach the limit and lock the next attempt.
    await assert_error(await post_login(client, ADMIN_LOGIN, "olga", "wrong-password"), 401, "invalid_credentials")
    assert (await post_login(client, ADMIN_LOGIN, "olga", password)).status == 200


async def test_one_address_failing_on_many_accounts_is_locked(client: TestClient, settings: Settings) -> None:
    password = "operator-password-1"
    await create_admin("olga", password, "operator")
    # The per-address limit is a multiple of the per-account one; spread below each account's.
    for i in range(settings.login_max_failures * 4):
        await assert_error(await post_login(client, ADMIN_LOGIN, f"guess{i}", "x"), 401, "invalid_credentials")
    locked = await post_login(client, ADMIN_LOGIN, "olga", password)
    await assert_error(locked, 429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) > 0
    # Staff logins are throttled separately.
    await assert_error(await post_login(client, STAFF_LOGIN, "nobody", "x"), 401, "invalid_credentials")


async def test_concurrent_failures_lock_the_account_and_never_500(client: TestClient, settings: Settings) -> None:
    """Attempts are counted before the password is checked, so a burst of guesses gets no
    more verdicts than the limit allows one at a time."""
    password = "operator-password-1"
    await create_admin("olga", password, "operator")
    answers = await asyncio.gather(*(post_login(client, ADMIN_LOGIN, "olga", f"wrong-{i}") for i in range(20)))
    statuses = sorted(resp.status for resp in answers)
    assert set(statuses) <= {401, 429}, statuses
    for resp in answers:
        error = await error_of(resp)
        assert error["code"] == {401: "invalid_credentials", 429: "too_many_attempts"}[resp.status]
    assert statuses.count(401) == settings.login_max_failures, statuses
    await assert_error(await post_login(client, ADMIN_LOGIN, "olga", password), 429, "too_many_attempts")


# --------------------------------------------------------------------------- stores


async def test_superadmin_creates_stores(client: TestClient) -> None:
    root = await logged_in_admin(client, "superadmin")
    headers = bearer(root["access_token"])
    resp = await client.post("/api/v1/admin/stores", json=store_body(), headers=headers)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert {k: body[k] for k in store_body()} == store_body()
    assert body["is_active"] is True and isinstance(body["id"], int)
    assert (await Store.get(id=body["id"])).code == "SH001"

    dup = await client.post("/api/v1/admin/stores", json=store_body(name="another"), headers=headers)
    await assert_error(dup, 409, "conflict")

    north_of_the_pole = await client.post(
        "/api/v1/admin/stores", json=store_body("SH002", latitude=91), headers=headers
    )
    assert "latitude" in named_fields(await assert_error(north_of_the_pole, 422, "validation_failed"))

    operator = await logged_in_admin(client, "operator")
    denied = await client.post(
        "/api/v1/admin/stores", json=store_body("SH003"), headers=bearer(operator["access_token"])
    )
    await assert_error(denied, 403, "forbidden")
    assert await Store.all().count() == 1


async def test_store_list_pages_with_a_cursor(client: TestClient) -> None:
    root = await logged_in_admin(client, "superadmin")
    headers = bearer(root["access_token"])
    created = []
    for i in range(5):
        resp = await client.post("/api/v1/admin/stores", json=store_body(f"S{i}"), headers=headers)
        assert resp.status == 201
        created.append((await resp.json())["id"])

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/api/v1/admin/stores", params=params, headers=headers)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 3
    assert seen == sorted(created, reverse=True)  # newest first, each once

    # Any admin may read the list.
    reviewer = await logged_in_admin(client, "reviewer")
    assert (await client.get("/api/v1/admin/stores", headers=bearer(reviewer["access_token"]))).status == 200

    for forged in ("not-a-cursor", "eyJiZWZvcmUiOiAieCJ9", "eyJiZWZvcmUiOiAtMX0", "e30"):
        resp = await client.get("/api/v1/admin/stores", params={"cursor": forged}, headers=headers)
        assert "cursor" in named_fields(await assert_error(resp, 422, "validation_failed")), forged


# --------------------------------------------------------------------------- staff


async def superadmin_with_store(client: TestClient, code: str = "SH001") -> tuple[dict[str, str], dict[str, Any]]:
    root = await logged_in_admin(client, "superadmin")
    headers = bearer(root["access_token"])
    resp = await client.post("/api/v1/admin/stores", json=store_body(code), headers=headers)
    assert resp.status == 201, await resp.text()
    return headers, await resp.json()


def staff_body(username: str, store_id: int, role: str = "clerk") -> dict[str, Any]:
    return {
        "username": username,
        "password": f"pw-{username}-123",
        "display_name": username.title(),
        "role": role,
        "store_id": store_id,
    }


async def test_superadmin_creates_staff_bound_to_a_store(client: TestClient) -> None:
    headers, store = await superadmin_with_store(client)
    for username, role in (("clara", "clerk"), ("max", "manager")):
        resp = await client.post("/api/v1/admin/staff", json=staff_body(username, store["id"], role), headers=headers)
        assert resp.status == 201, await resp.text()
        text = await resp.text()
        assert "password" not in text and "$argon2" not in text
        body = await resp.json()
        assert (body["username"], body["role"], body["store_id"], body["is_active"]) == (
            username,
            role,
            store["id"],
            True,
        )
        row = await StaffMember.get(username=username)
        assert row.password_hash.startswith("$argon2id$") and f"pw-{username}-123" not in row.password_hash

    unknown_store = await client.post("/api/v1/admin/staff", json=staff_body("sam", store["id"] + 100), headers=headers)
    assert "store_id" in named_fields(await assert_error(unknown_store, 422, "validation_failed"))
    dup = await client.post("/api/v1/admin/staff", json=staff_body("clara", store["id"], "manager"), headers=headers)
    await assert_error(dup, 409, "conflict")
    boss = await client.post("/api/v1/admin/staff", json=staff_body("bo", store["id"], "boss"), headers=headers)
    assert "role" in named_fields(await assert_error(boss, 422, "validation_failed"))
    assert await StaffMember.all().count() == 2
    assert (await StaffMember.get(username="clara")).role == "clerk"

    listed = await client.get("/api/v1/admin/staff", params={"store_id": str(store["id"])}, headers=headers)
    assert listed.status == 200
    assert [m["username"] for m in (await listed.json())["items"]] == ["max", "clara"]


async def test_staff_login_binds_the_token_to_the_store(client: TestClient, settings: Settings) -> None:
    headers, store = await superadmin_with_store(client)
    resp = await client.post("/api/v1/admin/staff", json=staff_body("clara", store["id"]), headers=headers)
    assert resp.status == 201

    login = await post_login(client, STAFF_LOGIN, "clara", "pw-clara-123")
    assert login.status == 200, await login.text()
    assert "password" not in (await login.text()).replace('"password_change_required"', "")
    body = await login.json()
    assert body["token_type"] == "Bearer" and body["staff"]["store"]["id"] == store["id"]
    principal = verify_access_token(settings.secret_key, body["access_token"])
    assert (principal.kind, principal.role, principal.store_id) == ("staff", "clerk", store["id"])

    me = await client.get("/api/v1/staff/me", headers=bearer(body["access_token"]))
    assert me.status == 200, await me.text()
    me_body = await me.json()
    assert me_body["username"] == "clara" and me_body["role"] == "clerk"
    assert me_body["store"] == {k: store[k] for k in me_body["store"]}
    assert me_body["store"]["id"] == principal.store_id

    # A refreshed token keeps the store binding.
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status == 200, await refreshed.text()
    assert verify_access_token(settings.secret_key, (await refreshed.json())["access_token"]).store_id == store["id"]

    await assert_error(await post_login(client, STAFF_LOGIN, "clara", "wrong-password"), 401, "invalid_credentials")


async def test_deactivated_staff_can_neither_log_in_nor_refresh(client: TestClient) -> None:
    headers, store = await superadmin_with_store(client)
    assert (
        await client.post("/api/v1/admin/staff", json=staff_body("clara", store["id"]), headers=headers)
    ).status == 201
    login = await post_login(client, STAFF_LOGIN, "clara", "pw-clara-123")
    assert login.status == 200
    tokens = await login.json()

    await StaffMember.filter(username="clara").update(is_active=False)

    await assert_error(await post_login(client, STAFF_LOGIN, "clara", "pw-clara-123"), 401, "invalid_credentials")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    await assert_error(refresh, 401, "invalid_refresh_token")
    me = await client.get("/api/v1/staff/me", headers=bearer(tokens["access_token"]))
    await assert_error(me, 401, "invalid_token")


async def test_staff_of_a_closed_store_cannot_log_in(client: TestClient) -> None:
    headers, store = await superadmin_with_store(client)
    assert (
        await client.post("/api/v1/admin/staff", json=staff_body("clara", store["id"]), headers=headers)
    ).status == 201
    await Store.filter(id=store["id"]).update(is_active=False)
    await assert_error(await post_login(client, STAFF_LOGIN, "clara", "pw-clara-123"), 401, "invalid_credentials")


async def test_deactivated_admin_is_refused(client: TestClient) -> None:
    login = await logged_in_admin(client, "operator", "olga")
    await Admin.filter(username="olga").update(is_active=False)
    await assert_error(
        await client.get("/api/v1/admin/me", headers=bearer(login["access_token"])), 401, "invalid_token"
    )
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    await assert_error(refresh, 401, "invalid_refresh_token")
    await assert_error(await post_login(client, ADMIN_LOGIN, "olga", "pw-olga-0123456789"), 401, "invalid_credentials")


# --------------------------------------------------------------------------- access rules on every route

GUARDED = [route for route in all_routes().routes if route.access is not PUBLIC]
ROLES = {"admin": ADMIN_ROLES, "staff": STAFF_ROLES, "customer": ()}


def test_the_matrix_covers_every_audience() -> None:
    kinds = {route.access.kind for route in GUARDED}
    assert kinds == {"admin", "staff", "customer"}, kinds
    assert any(route.access.roles for route in GUARDED)  # some routes are role-restricted


async def test_every_guarded_route_checks_its_caller(client: TestClient, settings: Settings) -> None:
    """For each non-public route: who is refused, with which status and code.

    Built from the route table, so a route added later is covered without touching this.
    """
    secret = settings.secret_key
    customer = (await customer_login(client, "o_alice"))["user"]["id"]

    def token(kind: str, role: str | None = None, store_id: int | None = None) -> str:
        return issue_access_token(secret, Principal(kind=kind, id=customer, role=role, store_id=store_id), 600)  # type: ignore[arg-type]

    problems: list[str] = []
    checked = 0
    for route in GUARDED:
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        body = {} if route.body is not None else None
        kind = route.access.kind
        assert kind is not None
        role_of_kind = ROLES[kind][0] if ROLES[kind] else None
        cases: list[tuple[str, dict[str, str], int, str]] = [
            ("no token", {}, 401, "unauthenticated"),
            ("garbage token", bearer("not.a.jwt"), 401, "invalid_token"),
            ("empty bearer", {"Authorization": "Bearer "}, 401, "invalid_token"),
            ("basic scheme", {"Authorization": "Basic dXNlcjpwYXNz"}, 401, "invalid_token"),
            (
                "expired token",
                bearer(
                    issue_access_token(
                        secret,
                        Principal(kind=kind, id=customer, role=role_of_kind, store_id=1 if kind == "staff" else None),
                        ttl_seconds=60,
                        now=time.time() - 3600,
                    )
                ),
                401,
                "token_expired",
            ),
            (
                "other secret",
                bearer(
                    issue_access_token(
                        "another-secret-key-that-is-long-enough-98765",
                        Principal(kind=kind, id=customer, role=role_of_kind, store_id=1 if kind == "staff" else None),
                        600,
                    )
                ),
                401,
                "invalid_token",
            ),
        ]
        for other in ("customer", "staff", "admin"):
            if other == kind:
                continue
            for role in ROLES[other] or (None,):
                tok = token(other, role, 1 if other == "staff" else None)
                cases.append((f"{other}:{role} token", bearer(tok), 403, "forbidden"))
        if route.access.roles:
            for role in ROLES[kind]:
                if role not in route.access.roles:
                    tok = token(kind, role, 1 if kind == "staff" else None)
                    cases.append((f"{kind}:{role} token", bearer(tok), 403, "forbidden"))
            tok = token(kind, None, 1 if kind == "staff" else None)
            cases.append((f"{kind} without role", bearer(tok), 403, "forbidden"))

        for label, headers, status, code in cases:
            resp = await client.request(route.method, path, json=body, headers=headers)
            checked += 1
            got = f"{resp.status} {await resp.text()}"
            if resp.status != status:
                problems.append(f"{route.method} {route.path} [{label}]: want {status} {code}, got {got}")
                continue
            error = await error_of(resp)
            if error["code"] != code:
                problems.append(f"{route.method} {route.path} [{label}]: want {code}, got {got}")
    assert not problems, "\n".join(problems)
    assert checked >= 6 * len(GUARDED)


async def test_the_right_caller_gets_through(client: TestClient, settings: Settings) -> None:
    """The other side of the matrix: a token of the declared kind and role passes the gate
    (on every GET route, which has no side effects). What the handler then answers (200,
    or 404/422 for the filled-in path or a missing query) is not this test's business,
    but it is never a 401/403 and never a 5xx."""
    customer = (await customer_login(client, "o_alice"))["user"]["id"]
    store = await accounts.create_store("GATE", "Gate store", "Shanghai", 31.2, 121.5)
    accounts_by_role: dict[tuple[str, str], int] = {}

    async def account(kind: str, role: str) -> int:
        if (kind, role) not in accounts_by_role:
            name = f"{kind}-{role}"
            if kind == "admin":
                row: Any = await accounts.create_admin(name, "pw-0123456789", role)
            else:
                row = await accounts.create_staff(name, "pw-0123456789", name, role, store.id)
            accounts_by_role[(kind, role)] = row.id
        return accounts_by_role[(kind, role)]

    checked = 0
    for route in GUARDED:
        if route.method != "GET":
            continue
        kind = route.access.kind
        assert kind is not None
        if kind == "customer":
            principal = Principal(kind="customer", id=customer)
        else:
            role = sorted(route.access.roles or ROLES[kind])[0]
            store_id = store.id if kind == "staff" else None
            principal = Principal(kind=kind, id=await account(kind, role), role=role, store_id=store_id)
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        resp = await client.get(path, headers=bearer(issue_access_token(settings.secret_key, principal, 600)))
        assert resp.status not in (401, 403) and resp.status < 500, (route.path, resp.status, await resp.text())
        if resp.status >= 400:
            await error_of(resp)
        checked += 1
    assert checked >= 4
