"""The request edge on real routes: every kind of bad input gets its documented status and
code in the one error shape, names the field, and writes nothing. Also: Redis down, the
health probes, and secrets kept out of the logs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from models.admins import Admin
from models.customers import Customer
from models.sessions import RefreshToken
from models.stores import StaffMember, Store
from server.app import create_app
from server.settings import Settings
from tests.conftest import TEST_SECRET
from tests.helpers import bearer, cheap_password_hashing, create_admin, customer_login, error_of, logged_in_admin
from tests.infra import free_port

STORES = "/api/v1/admin/stores"
STAFF = "/api/v1/admin/staff"
JSON = {"Content-Type": "application/json"}
VALID_STORE = {"code": "SH001", "name": "Jing'an", "city": "Shanghai", "latitude": 31.23, "longitude": 121.47}


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
async def root(client: TestClient) -> dict[str, str]:
    """Authorization headers of a logged-in superadmin."""
    return bearer((await logged_in_admin(client, "superadmin"))["access_token"])


async def assert_error(resp: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    if field is not None:
        fields = [item["field"] for item in error["details"]["errors"]]
        assert field in fields, (field, error)
    return error


async def row_counts() -> dict[str, int]:
    return {
        "stores": await Store.all().count(),
        "staff": await StaffMember.all().count(),
        "admins": await Admin.all().count(),
        "customers": await Customer.all().count(),
        "refresh_tokens": await RefreshToken.all().count(),
    }


def store(**changes: Any) -> dict[str, Any]:
    body = dict(VALID_STORE)
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


# --------------------------------------------------------------------------- bodies

# (name, raw body, status, code, field named)
BODY_CASES: list[tuple[str, bytes, int, str, str | None]] = [
    ("malformed JSON", b'{"code": "SH001", "name": ', 400, "invalid_json", None),
    ("single quotes", b"{'code': 'SH001'}", 400, "invalid_json", None),
    ("trailing garbage", json.dumps(VALID_STORE).encode() + b" {}", 400, "invalid_json", None),
    ("empty body", b"", 400, "invalid_json", None),
    ("whitespace body", b"  \n ", 400, "invalid_json", None),
    ("non-UTF-8 body", b"\xff\xfe" + json.dumps(VALID_STORE).encode(), 400, "invalid_json", None),
    ("UTF-16 body", json.dumps(VALID_STORE).encode("utf-16"), 400, "invalid_json", None),
    ("JSON array", json.dumps([VALID_STORE]).encode(), 422, "validation_failed", None),
    ("JSON string", b'"SH001"', 422, "validation_failed", None),
    ("JSON null", b"null", 422, "validation_failed", None),
    ("number for a string", json.dumps(store(code=5)).encode(), 422, "validation_failed", "code"),
    ("string for a number", json.dumps(store(latitude="31.23")).encode(), 422, "validation_failed", "latitude"),
    ("null for a required string", json.dumps(store(name=None)).encode(), 422, "validation_failed", "name"),
    ("object for a string", json.dumps(store(city={"zh": "上海"})).encode(), 422, "validation_failed", "city"),
    ("unknown field", json.dumps(store(owner="eve")).encode(), 422, "validation_failed", "owner"),
    ("missing field", json.dumps(store(city=...)).encode(), 422, "validation_failed", "city"),
    ("empty object", b"{}", 422, "validation_failed", "code"),
    ("latitude 91", json.dumps(store(latitude=91)).encode(), 422, "validation_failed", "latitude"),
    ("longitude -181", json.dumps(store(longitude=-181)).encode(), 422, "validation_failed", "longitude"),
    ("NaN latitude", json.dumps(store()).replace("31.23", "NaN").encode(), 422, "validation_failed", "latitude"),
    ("Infinity longitude", json.dumps(store()).replace("121.47", "Infinity").encode(), 422, "validation_failed", None),
    ("empty name", json.dumps(store(name="")).encode(), 422, "validation_failed", "name"),
    ("code with spaces", json.dumps(store(code="SH 001")).encode(), 422, "validation_failed", "code"),
    ("huge name", json.dumps(store(name="x" * 10_000)).encode(), 422, "validation_failed", "name"),
]


async def test_bad_store_bodies(client: TestClient, root: dict[str, str], subtests: Any) -> None:
    before = await row_counts()
    for name, raw, status, code, field in BODY_CASES:
        with subtests.test(name):
            resp = await client.post(STORES, data=raw, headers=root | JSON)
            await assert_error(resp, status, code, field)
    assert await row_counts() == before
    # The same route takes the valid body: the cases above failed for their own reason.
    assert (await client.post(STORES, json=VALID_STORE, headers=root)).status == 201


async def test_bodies_are_strict_about_types(client: TestClient, root: dict[str, str], subtests: Any) -> None:
    resp = await client.post(STORES, json=VALID_STORE, headers=root)
    store_id = (await resp.json())["id"]
    staff = {"username": "clara", "password": "pw-clara-123", "display_name": "Clara", "role": "clerk"}
    cases = [
        ('"5" for an int', {**staff, "store_id": str(store_id)}, "store_id"),
        ("float for an int", {**staff, "store_id": float(store_id)}, "store_id"),
        ("bool for an int", {**staff, "store_id": True}, "store_id"),
        ("number for a string", {**staff, "store_id": store_id, "display_name": 7}, "display_name"),
        ("list for a string", {**staff, "store_id": store_id, "password": ["pw-clara-123"]}, "password"),
        ("unknown role", {**staff, "store_id": store_id, "role": "boss"}, "role"),
        ("zero id", {**staff, "store_id": 0}, "store_id"),
        ("negative id", {**staff, "store_id": -1}, "store_id"),
        ("missing store", staff, "store_id"),
        ("unknown field", {**staff, "store_id": store_id, "is_active": False}, "is_active"),
    ]
    before = await row_counts()
    for name, body, field in cases:
        with subtests.test(name):
            await assert_error(await client.post(STAFF, json=body, headers=root), 422, "validation_failed", field)
    assert await row_counts() == before
    assert (await client.post(STAFF, json={**staff, "store_id": store_id}, headers=root)).status == 201


async def test_ids_beyond_64_bits_are_refused_not_crashed(client: TestClient, root: dict[str, str]) -> None:
    """JSON integers are unbounded; the database's are not."""
    staff = {"username": "clara", "password": "pw-clara-123", "display_name": "Clara", "role": "clerk"}
    before = await row_counts()
    resp = await client.post(STAFF, json={**staff, "store_id": 2**63}, headers=root)
    await assert_error(resp, 422, "validation_failed", "store_id")
    resp = await client.get(STAFF, params={"store_id": str(10**30)}, headers=root)
    await assert_error(resp, 422, "validation_failed", "store_id")
    assert await row_counts() == before


async def test_text_the_database_cannot_store_is_refused(client: TestClient, root: dict[str, str]) -> None:
    """A NUL character is valid JSON ("\\u0000") but no storable text (PostgreSQL refuses
    it): a 422 naming the field on both backends, never a 500. A lone surrogate is not
    valid JSON text at all."""
    before = await row_counts()
    resp = await client.post(STORES, data=json.dumps(store(name="a\u0000b")).encode(), headers=root | JSON)
    await assert_error(resp, 422, "validation_failed", "name")
    staff = {"username": "clara", "password": "pw-clara-123", "display_name": "Cl\u0000ra", "role": "clerk"}
    resp = await client.post(STAFF, json={**staff, "store_id": 1}, headers=root)
    await assert_error(resp, 422, "validation_failed", "display_name")
    resp = await client.post(STORES, data=b'{"code": "SH9", "name": "\\ud800", "city": "x"}', headers=root | JSON)
    await assert_error(resp, 400, "invalid_json")
    assert await row_counts() == before


async def test_nul_in_a_login_name_is_refused_at_the_edge(client: TestClient) -> None:
    for path in ("/api/v1/admin/auth/login", "/api/v1/staff/auth/login"):
        resp = await client.post(path, json={"username": "root\u0000", "password": "whatever-password"})
        error = await assert_error(resp, 422, "validation_failed")
        assert error["details"]["errors"][0]["field"] == "username"


async def test_wrong_content_type(client: TestClient, root: dict[str, str]) -> None:
    before = await row_counts()
    body = json.dumps(VALID_STORE).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = await client.post(STORES, data=body, headers=root | {"Content-Type": content_type})
        await assert_error(resp, 415, "unsupported_media_type")
    assert await row_counts() == before
    # JSON with a charset is fine.
    ok = await client.post(STORES, data=body, headers=root | {"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 201, await ok.text()


async def test_two_megabyte_body(client: TestClient, root: dict[str, str], settings: Settings) -> None:
    before = await row_counts()
    big = json.dumps(store(name="x" * (2 * 1024 * 1024))).encode()
    assert len(big) > settings.max_body_bytes

    # With a Content-Length: refused before reading.
    resp = await client.post(STORES, data=io.BytesIO(big), headers=root | JSON)
    assert resp.request_info.headers.get("Content-Length") == str(len(big))
    error = await assert_error(resp, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == settings.max_body_bytes

    # Chunked, with no Content-Length: refused once the limit is crossed while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    resp = await client.post(STORES, data=chunks(), headers=root | JSON)
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    await assert_error(resp, 413, "payload_too_large")

    # A chunked body under the limit is read normally.
    async def small() -> AsyncIterator[bytes]:
        yield json.dumps(VALID_STORE).encode()

    resp = await client.post(STORES, data=small(), headers=root | JSON)
    assert resp.status == 201, await resp.text()
    assert await row_counts() == {**before, "stores": before["stores"] + 1}


async def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its connection while the server reads its body (a load
    generator or an app giving up) is logged in one INFO line, not as an unhandled error
    with a traceback. Served as `python -m server` serves (aiohttp's runner without handler
    cancellation: the test server cancels the handler instead, which hides this)."""
    caplog.set_level(logging.INFO)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        body = json.dumps({"username": "root", "password": "root-password-123"}).encode()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /api/v1/admin/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) + 100}\r\n\r\n"
        )
        writer.write(head.encode() + body)  # 100 bytes short: the server waits for them
        await writer.drain()
        await asyncio.sleep(0.3)
        # Hang up with a reset (SO_LINGER 0), as a client giving up on a timeout may.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        for _ in range(100):  # until the server has seen the hang-up
            if "client closed the request" in caplog.text:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert "client closed the request on POST /api/v1/admin/auth/login" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# --------------------------------------------------------------------------- the customer's profile


async def test_profile_patch_limits(client: TestClient, subtests: Any) -> None:
    login = await customer_login(client, "o_alice")
    headers = bearer(login["access_token"])
    ok = await client.patch("/api/v1/me", json={"nickname": "Alice", "interest_tags": ["coffee"]}, headers=headers)
    assert ok.status == 200, await ok.text()
    cases = [
        ("10,000-character nickname", {"nickname": "n" * 10_000}, "nickname"),
        ("empty nickname", {"nickname": ""}, "nickname"),
        ("number nickname", {"nickname": 42}, "nickname"),
        ("21 interest tags", {"interest_tags": [f"tag{i}" for i in range(21)]}, "interest_tags"),
        ("a 25-character tag", {"interest_tags": ["t" * 25]}, "interest_tags.0"),
        ("a blank tag", {"interest_tags": ["coffee", "   "]}, "interest_tags.1"),
        ("tags as a string", {"interest_tags": "coffee"}, "interest_tags"),
        ('"5" for a store id', {"preferred_store_id": "5"}, "preferred_store_id"),
        ("unknown store", {"preferred_store_id": 999}, "preferred_store_id"),
        ("store id beyond 64 bits", {"preferred_store_id": 2**64}, "preferred_store_id"),
        ("unknown field", {"phone_number": "13800138000"}, "phone_number"),
        ("NUL in a nickname", {"nickname": "Al\u0000ce"}, "nickname"),
        ("valid and invalid together", {"nickname": "Mallory", "city": "c" * 33}, "city"),
    ]
    for name, body, field in cases:
        with subtests.test(name):
            resp = await client.patch("/api/v1/me", json=body, headers=headers)
            await assert_error(resp, 422, "validation_failed", field)
    row = await Customer.get(id=login["user"]["id"])
    assert (row.nickname, row.interest_tags, row.phone_number, row.city) == ("Alice", ["coffee"], None, None)
    assert row.preferred_store_id is None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- paths, methods, queries


async def test_unknown_path_and_wrong_method(client: TestClient, root: dict[str, str]) -> None:
    for path in ("/api/v1/nope", "/api/v2/me", "/nope", "/api/v1/admin/stores/1/../../x"):
        await assert_error(await client.get(path, headers=root), 404, "not_found")
    resp = await client.put("/api/v1/me", headers=root)  # GET, PATCH and DELETE (data rights) exist
    await assert_error(resp, 405, "method_not_allowed")
    segments = "/api/v1/admin/segments"
    made = await client.post(segments, json={"name": "sh", "rule": {"city": "Shanghai"}}, headers=root)
    assert made.status == 201 and (await made.json())["id"] == 1, await made.text()
    # Digits beyond ASCII in an id: "¹" made int() raise (a 500, found by schemathesis),
    # and an Arabic-Indic or fullwidth one (U+0661, U+FF11) named segment 1.
    for raw in ("%C2%B9", "1%C2%B9", "%D9%A1", "%EF%BC%91"):
        await assert_error(await client.get(f"{segments}/{raw}", headers=root), 404, "not_found")
        await assert_error(await client.delete(f"{segments}/{raw}", headers=root), 404, "not_found")
    assert (await client.get(f"{segments}/1", headers=root)).status == 200
    assert set(resp.headers["Allow"].split(",")) >= {"GET", "PATCH"}
    resp = await client.put(STORES, json=VALID_STORE, headers=root)
    await assert_error(resp, 405, "method_not_allowed")
    assert await Store.all().count() == 0


async def test_bad_query_parameters(client: TestClient, root: dict[str, str], subtests: Any) -> None:
    cases = [
        ("unknown parameter", "?foo=1", "foo"),
        ("limit=0", "?limit=0", "limit"),
        ("limit=101", "?limit=101", "limit"),
        ("limit=-1", "?limit=-1", "limit"),
        ("limit=abc", "?limit=abc", "limit"),
        ("limit=1.5", "?limit=1.5", "limit"),
        ("limit twice", "?limit=1&limit=2", "limit"),
        ("forged cursor", "?cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("oversized cursor", "?cursor=" + "A" * 201, "cursor"),
    ]
    for name, query, field in cases:
        with subtests.test(name):
            await assert_error(await client.get(STORES + query, headers=root), 422, "validation_failed", field)
    with subtests.test("staff list: store_id=x"):
        await assert_error(await client.get(STAFF + "?store_id=x", headers=root), 422, "validation_failed", "store_id")
    for limit in ("1", "100"):
        assert (await client.get(STORES, params={"limit": limit}, headers=root)).status == 200


# --------------------------------------------------------------------------- health, readiness, Redis down


async def test_healthz_and_readyz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "redis": "ok", "claims": "ok"}


async def test_redis_down(settings: Settings) -> None:
    """The app starts without Redis; what needs Redis answers 503, the rest keeps working."""
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down)
    async with TestClient(TestServer(app, host="127.0.0.1", port=down.port)) as client:
        await create_admin("root", "root-password-123", "superadmin")

        resp = await client.post("/api/v1/admin/auth/login", json={"username": "root", "password": "root-password-123"})
        await assert_error(resp, 503, "redis_unavailable")
        assert await RefreshToken.all().count() == 0
        assert (await Admin.get(username="root")).last_login_at is None

        resp = await client.get("/readyz")
        assert resp.status == 503, await resp.text()
        error = await error_of(resp)
        assert error["code"] == "not_ready" and "redis" in error["message"]
        assert error["details"]["checks"] == {"database": "ok", "redis": "failed", "claims": "failed"}

        assert (await client.get("/healthz")).status == 200


# --------------------------------------------------------------------------- secrets stay out of the logs


async def test_session_key_and_secret_never_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    login = await customer_login(client, "o_alice")
    headers = bearer(login["access_token"])

    # getuserphonenumber flow
    resp = await client.post("/_wechat/phone-code", json={"openid": "o_alice", "phone_number": "+86 13800138000"})
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/v1/me/phone", json={"code": (await resp.json())["code"]}, headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["phone_number"] == "+86 13800138000"

    # encryptedData + iv flow, decrypted with the stored session_key
    data = {"phoneNumber": "13900139000", "purePhoneNumber": "13900139000", "countryCode": "86"}
    resp = await client.post("/_wechat/encrypted-data", json={"openid": "o_alice", "data": data})
    assert resp.status == 200, await resp.text()
    sealed = await resp.json()
    body = {"encrypted_data": sealed["encrypted_data"], "iv": sealed["iv"]}
    resp = await client.post("/api/v1/me/phone", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["phone_number"] == "13900139000"

    # A failing call (bad data) is logged too, and must not leak either.
    resp = await client.post("/api/v1/me/phone", json={**body, "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}, headers=headers)
    await assert_error(resp, 400, "phone_data_invalid")

    session_key = (await Customer.get(id=login["user"]["id"])).session_key
    assert session_key
    assert caplog.records, "nothing was logged at all: the check below would prove nothing"
    secrets = {"session_key": session_key, "SECRET_KEY": TEST_SECRET, "refresh token": login["refresh_token"]}
    leaks = sorted(
        {
            f"{what} in a {record.levelname} line of logger {record.name!r}"
            for record in caplog.records
            for what, secret in secrets.items()
            if secret in record.getMessage() or secret in (record.exc_text or "")
        }
    )
    assert not leaks, "\n".join(leaks)
    assert not any(secret in caplog.text for secret in secrets.values())
