"""Issue 15, accounts and access: managing admins, staff and stores; sessions that end at
once (token epochs); password change, reset and rules; integration keys (disable, rotate
with a grace period); and the audit trail of all of it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.admins import Admin
from models.audit import AuditEntry
from models.journey import Integration
from models.stores import StaffMember, Store
from server.keys import REDIS, SETTINGS
from services.accounts import epoch_key
from services.accounts import operators as accounts
from services.activity import integrations
from services.core import Actor, Principal, errors, issue_access_token
from tests.content.test_media import form, image_bytes
from tests.helpers import admin_login, bearer, cheap_password_hashing, create_admin, error_of, logged_in_admin
from tests.journey.fixtures import Pos, pos, shoppers, visit
from tests.wallet.fixtures import PREVIEW, REDEEM, qr_payload, store, vouchers

STAFF_LOGIN = "/api/v1/staff/auth/login"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, await resp.text())
    return await resp.json()


async def superadmin(client: TestClient, username: str = "root") -> dict[str, str]:
    return bearer((await logged_in_admin(client, "superadmin", username))["access_token"])


async def staff_account(
    client: TestClient, store_id: int, username: str = "clara", role: str = "clerk"
) -> tuple[StaffMember, dict[str, Any]]:
    """A staff account and its login answer (tokens)."""
    password = f"secret-{role}-0123456789"
    member = await accounts.create_staff(username, password, username.title(), role, store_id)
    login = await ok(await client.post(STAFF_LOGIN, json={"username": username, "password": password}))
    return member, login


async def audit_of(action: str, entity_id: int) -> AuditEntry:
    entry = await AuditEntry.filter(action=action, entity_id=entity_id).order_by("-id").first()
    assert entry is not None, action
    return entry


def as_dict(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------- admins


async def test_superadmins_list_admins_by_role_and_active_with_a_cursor(client: TestClient) -> None:
    root = await superadmin(client)
    for i in range(3):
        await create_admin(f"op{i}", "pw-0123456789", "operator")
    await create_admin("rev", "pw-0123456789", "reviewer")
    await Admin.filter(username="op1").update(is_active=False)

    everyone = await ok(await client.get("/api/v1/admin/admins", headers=root))
    assert [a["username"] for a in everyone["items"]] == ["rev", "op2", "op1", "op0", "root"]
    assert "password_hash" not in json.dumps(everyone)
    operators = await ok(await client.get("/api/v1/admin/admins", params={"role": "operator"}, headers=root))
    assert [a["username"] for a in operators["items"]] == ["op2", "op1", "op0"]
    active_ops = await ok(
        await client.get("/api/v1/admin/admins", params={"role": "operator", "active": "true"}, headers=root)
    )
    assert [a["username"] for a in active_ops["items"]] == ["op2", "op0"]
    disabled = await ok(await client.get("/api/v1/admin/admins", params={"active": "false"}, headers=root))
    assert [a["username"] for a in disabled["items"]] == ["op1"]

    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = await ok(await client.get("/api/v1/admin/admins", params=params, headers=root))
        seen += [a["username"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["rev", "op2", "op1", "op0", "root"]

    bad = await client.get("/api/v1/admin/admins", params={"role": "god"}, headers=root)
    await refused(bad, 422, "validation_failed")
    operator = bearer((await admin_login(client, "op0", "pw-0123456789"))["access_token"])
    await refused(await client.get("/api/v1/admin/admins", headers=operator), 403, "forbidden")


async def test_patching_an_admin_is_audited_and_a_demotion_ends_its_sessions(client: TestClient) -> None:
    root = await superadmin(client)
    olga = await logged_in_admin(client, "approver", "olga")
    olga_id = olga["admin"]["id"]
    olga_headers = bearer(olga["access_token"])
    assert (await client.get("/api/v1/admin/me", headers=olga_headers)).status == 200

    got = await ok(await client.get(f"/api/v1/admin/admins/{olga_id}", headers=root))
    assert got["role"] == "approver" and got["display_name"] == ""

    renamed = await ok(
        await client.patch(f"/api/v1/admin/admins/{olga_id}", json={"display_name": " Olga K. "}, headers=root)
    )
    assert renamed["display_name"] == "Olga K." and renamed["role"] == "approver"
    # A name change ends no session.
    assert (await client.get("/api/v1/admin/me", headers=olga_headers)).status == 200

    demoted = await ok(await client.patch(f"/api/v1/admin/admins/{olga_id}", json={"role": "reviewer"}, headers=root))
    assert demoted["role"] == "reviewer"
    entry = await audit_of("admin.update", olga_id)
    assert (as_dict(entry.before), as_dict(entry.after)) == ({"role": "approver"}, {"role": "reviewer"})
    assert entry.actor_kind == "admin"

    # The token she already holds carried the old role: refused on its next request, and
    # its refresh token too; a new login carries the new role.
    await refused(await client.get("/api/v1/admin/me", headers=olga_headers), 401, "invalid_token")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": olga["refresh_token"]})
    await refused(refresh, 401, "invalid_refresh_token")
    again = await admin_login(client, "olga", "pw-olga-0123456789")
    assert again["admin"]["role"] == "reviewer"
    assert (await client.get("/api/v1/admin/me", headers=bearer(again["access_token"]))).status == 200

    await refused(
        await client.patch("/api/v1/admin/admins/9999", json={"active": False}, headers=root), 404, "not_found"
    )
    await refused(
        await client.patch(f"/api/v1/admin/admins/{olga_id}", json={}, headers=root), 422, "validation_failed"
    )
    await refused(
        await client.patch(f"/api/v1/admin/admins/{olga_id}", json={"role": "god"}, headers=root), 422,
        "validation_failed",
    )  # fmt: skip
    await refused(
        await client.patch(f"/api/v1/admin/admins/{olga_id}", json={"is_active": False}, headers=root), 422,
        "validation_failed",
    )  # fmt: skip


async def test_the_last_active_superadmin_cannot_be_demoted_or_disabled(client: TestClient) -> None:
    root_login = await logged_in_admin(client, "superadmin", "root")
    root, root_id = bearer(root_login["access_token"]), root_login["admin"]["id"]
    for change in ({"role": "operator"}, {"active": False}):
        resp = await client.patch(f"/api/v1/admin/admins/{root_id}", json=change, headers=root)
        await refused(resp, 409, "last_superadmin")
    assert (await Admin.get(id=root_id)).role == "superadmin"
    # A disabled superadmin does not count.
    second = await create_admin("second", "pw-0123456789", "superadmin")
    await Admin.filter(id=second.id).update(is_active=False)
    await refused(
        await client.patch(f"/api/v1/admin/admins/{root_id}", json={"role": "operator"}, headers=root), 409,
        "last_superadmin",
    )  # fmt: skip
    # With another active superadmin, it may.
    await ok(await client.patch(f"/api/v1/admin/admins/{second.id}", json={"active": True}, headers=root))
    await ok(await client.patch(f"/api/v1/admin/admins/{root_id}", json={"role": "operator"}, headers=root))
    assert await Admin.filter(role="superadmin", is_active=True).count() == 1


@pytest.mark.parametrize("change", [{"role": "approver"}, {"active": False}])
async def test_concurrent_demotions_of_the_last_two_superadmins_leave_one(
    client: TestClient, change: dict[str, Any]
) -> None:
    """Each superadmin demotes (or disables) the other at the same moment, many times over:
    never zero left (on PostgreSQL the row locks make the second wait, then see one)."""
    redis = client.server.app[REDIS]
    for round_ in range(5):
        a = await create_admin(f"a{round_}", "pw-0123456789", "superadmin")
        b = await create_admin(f"b{round_}", "pw-0123456789", "superadmin")
        await Admin.filter(role="superadmin").exclude(id__in=(a.id, b.id)).update(role="operator")

        async def demote(actor_id: int, target: int) -> Any:
            actor = Actor(Principal(kind="admin", id=actor_id, role="superadmin"))
            return await accounts.update_admin(
                redis, actor, target, role=change.get("role"), active=change.get("active")
            )

        results = await asyncio.gather(demote(a.id, b.id), demote(b.id, a.id), return_exceptions=True)
        refusals = [r for r in results if isinstance(r, BaseException)]
        assert len(refusals) == 1 and isinstance(refusals[0], errors.LastSuperadmin), results
        assert await Admin.filter(role="superadmin", is_active=True).count() == 1


# --------------------------------------------------------------------------- staff and stores


async def test_staff_are_listed_read_and_edited_with_an_audit_trail(client: TestClient) -> None:
    root = await superadmin(client)
    one, two = await store("S1"), await store("S2")
    clara, _ = await staff_account(client, one.id, "clara")
    max_, _ = await staff_account(client, one.id, "max", "manager")
    await staff_account(client, two.id, "tina")

    got = await ok(await client.get(f"/api/v1/admin/staff/{clara.id}", headers=root))
    assert got["username"] == "clara" and got["store_id"] == one.id and got["is_active"] is True
    await refused(await client.get("/api/v1/admin/staff/9999", headers=root), 404, "not_found")

    moved = await ok(
        await client.patch(
            f"/api/v1/admin/staff/{clara.id}",
            json={"display_name": "Clara W.", "role": "manager", "store_id": two.id},
            headers=root,
        )
    )
    assert (moved["display_name"], moved["role"], moved["store_id"]) == ("Clara W.", "manager", two.id)
    entry = await audit_of("staff.update", clara.id)
    assert as_dict(entry.before) == {"display_name": "Clara", "role": "clerk", "store_id": one.id}
    assert as_dict(entry.after) == {"display_name": "Clara W.", "role": "manager", "store_id": two.id}
    await ok(await client.patch(f"/api/v1/admin/staff/{max_.id}", json={"active": False}, headers=root))

    async def names(**params: str) -> list[str]:
        page = await ok(await client.get("/api/v1/admin/staff", params=params, headers=root))
        return [m["username"] for m in page["items"]]

    assert await names(store_id=str(two.id)) == ["tina", "clara"]
    assert await names(role="manager") == ["max", "clara"]
    assert await names(role="manager", active="true") == ["clara"]
    assert await names(active="false") == ["max"]

    unknown = await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"store_id": 9999}, headers=root)
    await refused(unknown, 422, "validation_failed")
    boss = await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"role": "boss"}, headers=root)
    await refused(boss, 422, "validation_failed")
    await refused(
        await client.patch("/api/v1/admin/staff/9999", json={"active": False}, headers=root), 404, "not_found"
    )
    operator = bearer((await logged_in_admin(client, "operator", "olga"))["access_token"])
    await refused(
        await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"active": True}, headers=operator), 403, "forbidden"
    )
    assert (await client.get(f"/api/v1/admin/staff/{clara.id}", headers=operator)).status == 200


async def test_stores_are_read_and_edited_and_creation_is_audited(client: TestClient) -> None:
    root = await superadmin(client)
    body = {"code": "SH9", "name": "Old name", "city": "Shanghai", "latitude": 31.2, "longitude": 121.4}
    created = await ok(await client.post("/api/v1/admin/stores", json=body, headers=root), 201)
    assert created["address"] == "" and created["state"] == "open"
    entry = await audit_of("store.create", created["id"])
    assert entry.before is None and as_dict(entry.after)["code"] == "SH9"

    patched = await ok(
        await client.patch(
            f"/api/v1/admin/stores/{created['id']}",
            json={"name": "New name", "address": "1 Nanjing Road", "latitude": 31.24, "longitude": 121.47},
            headers=root,
        )
    )
    assert (patched["name"], patched["address"], patched["latitude"], patched["state"]) == (
        "New name", "1 Nanjing Road", 31.24, "open",
    )  # fmt: skip
    got = await ok(await client.get(f"/api/v1/admin/stores/{created['id']}", headers=root))
    assert got == patched
    entry = await audit_of("store.update", created["id"])
    assert as_dict(entry.before) == {"address": "", "latitude": 31.2, "longitude": 121.4, "name": "Old name"}

    for wrong in ({"state": "ajar"}, {"latitude": 91}, {"code": "X"}, {}):
        resp = await client.patch(f"/api/v1/admin/stores/{created['id']}", json=wrong, headers=root)
        await refused(resp, 422, "validation_failed")
    await refused(await client.get("/api/v1/admin/stores/9999", headers=root), 404, "not_found")


async def test_a_closed_store_takes_no_redemptions(client: TestClient) -> None:
    root = await superadmin(client)
    shop = await store()
    _, login = await staff_account(client, shop.id)
    clerk = bearer(login["access_token"])
    held, earlier = await vouchers(client, count=2)
    payload = await qr_payload(client, held)
    earlier_payload = await qr_payload(client, earlier)
    keyed = clerk | {"Idempotency-Key": "till-1-0001"}
    first = await ok(await client.post(REDEEM, json={"payload": earlier_payload}, headers=keyed), 201)

    closed = await ok(await client.patch(f"/api/v1/admin/stores/{shop.id}", json={"state": "closed"}, headers=root))
    assert closed["state"] == "closed"
    await refused(await client.post(PREVIEW, json={"payload": payload}, headers=clerk), 403, "store_closed")
    await refused(await client.post(REDEEM, json={"payload": payload}, headers=clerk), 403, "store_closed")
    many = await asyncio.gather(*(client.post(REDEEM, json={"payload": payload}, headers=clerk) for _ in range(20)))
    for resp in many:
        await refused(resp, 403, "store_closed")
    assert (await held.row()).status == "available"
    # A retry of a redemption made before the store closed still gets its first answer.
    replay = await client.post(REDEEM, json={"payload": earlier_payload}, headers=keyed)
    assert (await ok(replay, 201))["id"] == first["id"] and replay.headers["Idempotent-Replayed"] == "true"
    # Staff of a closed store still log in and read their day.
    assert (await client.get("/api/v1/staff/me", headers=clerk)).status == 200
    assert (await client.get("/api/v1/staff/redemptions", headers=clerk)).status == 200

    await ok(await client.patch(f"/api/v1/admin/stores/{shop.id}", json={"state": "open"}, headers=root))
    await ok(await client.post(REDEEM, json={"payload": payload}, headers=clerk), 201)
    assert (await held.row()).status == "used"


# --------------------------------------------------------------------------- ending sessions


async def test_offboarding_a_clerk_mid_shift_stops_the_token_already_held(client: TestClient) -> None:
    """End to end: a clerk redeems, is disabled by a superadmin, and the access token
    (and refresh token) they still hold are refused at once, not at expiry."""
    root = await superadmin(client)
    shop = await store()
    clara, login = await staff_account(client, shop.id)
    clerk = bearer(login["access_token"])
    first, second = await vouchers(client, count=2)
    await ok(await client.post(REDEEM, json={"payload": await qr_payload(client, first)}, headers=clerk), 201)

    await ok(await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"active": False}, headers=root))

    payload = await qr_payload(client, second)
    await refused(await client.post(REDEEM, json={"payload": payload}, headers=clerk), 401, "invalid_token")
    await refused(await client.post(PREVIEW, json={"payload": payload}, headers=clerk), 401, "invalid_token")
    assert (await second.row()).status == "available"
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    await refused(refresh, 401, "invalid_refresh_token")
    relogin = await client.post(STAFF_LOGIN, json={"username": "clara", "password": "secret-clerk-0123456789"})
    await refused(relogin, 401, "invalid_credentials")
    entry = await audit_of("staff.update", clara.id)
    assert (as_dict(entry.before), as_dict(entry.after)) == ({"is_active": True}, {"is_active": False})

    # Re-enabled, the old token stays dead (its epoch is behind); a new login works.
    await ok(await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"active": True}, headers=root))
    await refused(await client.get("/api/v1/staff/me", headers=clerk), 401, "invalid_token")
    relogin = await client.post(STAFF_LOGIN, json={"username": "clara", "password": "secret-clerk-0123456789"})
    fresh = bearer((await ok(relogin))["access_token"])
    await ok(await client.post(REDEEM, json={"payload": payload}, headers=fresh), 201)


async def test_the_epoch_is_read_from_redis_and_refilled_from_the_database(client: TestClient) -> None:
    """Processes agree through Redis: a bump written there by any process refuses the
    token here; after a Redis loss, the epoch comes back from the database (not 0)."""
    redis = client.server.app[REDIS]
    shop = await store()
    clara, login = await staff_account(client, shop.id)
    clerk = bearer(login["access_token"])
    assert (await client.get("/api/v1/staff/me", headers=clerk)).status == 200
    assert await redis.get(epoch_key("staff", clara.id)) in ("0", b"0")

    await redis.set(epoch_key("staff", clara.id), 1)  # as another process's bump would
    await refused(await client.get("/api/v1/staff/me", headers=clerk), 401, "invalid_token")

    await StaffMember.filter(id=clara.id).update(token_epoch=3)
    await redis.delete(epoch_key("staff", clara.id))
    await refused(await client.get("/api/v1/staff/me", headers=clerk), 401, "invalid_token")
    assert await redis.get(epoch_key("staff", clara.id)) in ("3", b"3")
    secret = client.server.app[SETTINGS].secret_key
    current = issue_access_token(
        secret, Principal(kind="staff", id=clara.id, role="clerk", store_id=shop.id, epoch=3), 600
    )
    assert (await client.get("/api/v1/staff/me", headers=bearer(current))).status == 200


async def test_customer_tokens_carry_no_epoch_and_cost_no_redis_call(client: TestClient) -> None:
    """The grab path's caller: no epoch claim, no epoch key read."""
    redis = client.server.app[REDIS]
    [held] = await vouchers(client)
    token = held.auth["Authorization"].split()[1]
    assert "epc" not in issue_access_token("k" * 40, Principal(kind="customer", id=1), 60)
    before = await redis.info("commandstats")
    for _ in range(5):
        assert (await client.get("/api/v1/me/vouchers", headers=bearer(token))).status == 200
    after = await redis.info("commandstats")
    assert not await redis.keys("account-epoch:*")

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    assert calls(after, "get") == calls(before, "get"), (before.get("cmdstat_get"), after.get("cmdstat_get"))


# --------------------------------------------------------------------------- passwords


async def test_staff_change_their_password_under_the_rules(client: TestClient) -> None:
    shop = await store()
    _, login = await staff_account(client, shop.id, "clara")
    clerk = bearer(login["access_token"])
    path = "/api/v1/staff/me/password"
    old = "secret-clerk-0123456789"

    async def change(new: str, current: str = old) -> Any:
        return await client.post(path, json={"old_password": current, "new_password": new}, headers=clerk)

    await refused(await change("a-fine-new-password", "not-it"), 403, "wrong_password")
    short = await refused(await change("short1"), 422, "password_too_short")
    assert short["details"]["min_length"] == 10
    await refused(await change("I-am-CLARA-2024"), 422, "password_contains_username")
    await refused(await change("Password123"), 422, "password_too_common")
    await refused(await change(old), 422, "validation_failed")
    await refused(await client.post(path, json={"old_password": old}, headers=clerk), 422, "validation_failed")

    pair = await ok(await change("a-fine-new-password"))
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    # Every earlier session ended; the answer's works.
    await refused(await client.get("/api/v1/staff/me", headers=clerk), 401, "invalid_token")
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    await refused(refresh, 401, "invalid_refresh_token")
    assert (await client.get("/api/v1/staff/me", headers=bearer(pair["access_token"]))).status == 200
    relogin = await client.post(STAFF_LOGIN, json={"username": "clara", "password": "a-fine-new-password"})
    assert relogin.status == 200
    await refused(
        await client.post(STAFF_LOGIN, json={"username": "clara", "password": old}), 401, "invalid_credentials"
    )
    assert await AuditEntry.filter(action="staff.password_change").count() == 1
    entries = [e for e in await AuditEntry.all() if "a-fine-new-password" in json.dumps([e.before, e.after])]
    assert not entries


async def test_admins_change_their_password(client: TestClient) -> None:
    login = await logged_in_admin(client, "operator", "olga")
    headers = bearer(login["access_token"])
    resp = await client.post(
        "/api/v1/admin/me/password",
        json={"old_password": "pw-olga-0123456789", "new_password": "correct horse battery"},
        headers=headers,
    )
    pair = await ok(resp)
    await refused(await client.get("/api/v1/admin/me", headers=headers), 401, "invalid_token")
    assert (await client.get("/api/v1/admin/me", headers=bearer(pair["access_token"]))).status == 200
    await admin_login(client, "olga", "correct horse battery")


async def test_guessing_the_old_password_is_throttled_like_a_login(client: TestClient) -> None:
    """A stolen access token gives no faster way to guess the password than the login."""
    login = await logged_in_admin(client, "operator", "olga")
    headers = bearer(login["access_token"])
    limit = client.server.app[SETTINGS].login_max_failures
    for i in range(limit):
        resp = await client.post(
            "/api/v1/admin/me/password", json={"old_password": f"guess-{i}", "new_password": "x" * 12}, headers=headers
        )
        await refused(resp, 403, "wrong_password")
    right = await client.post(
        "/api/v1/admin/me/password",
        json={"old_password": "pw-olga-0123456789", "new_password": "a-brand-new-secret"},
        headers=headers,
    )
    await refused(right, 429, "too_many_attempts")
    assert int(right.headers["Retry-After"]) > 0


@pytest.mark.parametrize("kind", ["staff", "admin"])
async def test_a_reset_password_must_be_changed_at_the_next_login(client: TestClient, kind: str) -> None:
    root = await superadmin(client)
    if kind == "staff":
        shop = await store()
        member, login = await staff_account(client, shop.id, "clara")
        account_id, login_path, me, change = member.id, STAFF_LOGIN, "/api/v1/staff/me", "/api/v1/staff/me/password"
        username = "clara"
    else:
        login = await logged_in_admin(client, "operator", "olga")
        account_id, login_path, me = login["admin"]["id"], "/api/v1/admin/auth/login", "/api/v1/admin/me"
        change, username = "/api/v1/admin/me/password", "olga"
    held = bearer(login["access_token"])

    reset = await ok(await client.post(f"/api/v1/admin/{kind}/{account_id}/reset-password".replace(
        "/admin/admin/", "/admin/admins/"), headers=root))  # fmt: skip
    one_time = reset["one_time_password"]
    assert len(one_time) >= 16
    entry = await audit_of(f"{kind}.password_reset", account_id)
    assert one_time not in json.dumps([entry.before, entry.after])
    await refused(await client.get(me, headers=held), 401, "invalid_token")  # sessions ended

    answer = await ok(await client.post(login_path, json={"username": username, "password": one_time}))
    assert answer["password_change_required"] is True
    pending = bearer(answer["access_token"])
    await refused(await client.get(me, headers=pending), 403, "password_change_required")
    if kind == "staff":
        await refused(await client.get("/api/v1/staff/redemptions", headers=pending), 403, "password_change_required")
    else:
        await refused(await client.get("/api/v1/admin/stores", headers=pending), 403, "password_change_required")
    # A refreshed token is just as limited.
    rotated = await ok(await client.post("/api/v1/auth/refresh", json={"refresh_token": answer["refresh_token"]}))
    await refused(await client.get(me, headers=bearer(rotated["access_token"])), 403, "password_change_required")

    pair = await ok(
        await client.post(
            change,
            json={"old_password": one_time, "new_password": "my own secret 42"},
            headers=bearer(rotated["access_token"]),
        )
    )
    assert (await client.get(me, headers=bearer(pair["access_token"]))).status == 200
    final = await ok(await client.post(login_path, json={"username": username, "password": "my own secret 42"}))
    assert final["password_change_required"] is False

    await refused(await client.post(f"/api/v1/admin/{'staff' if kind == 'staff' else 'admins'}/9999/reset-password",
                                    headers=root), 404, "not_found")  # fmt: skip


# --------------------------------------------------------------------------- integrations


async def test_an_integration_can_be_disabled(client: TestClient) -> None:
    root = await superadmin(client)
    till = await pos(client)
    [shopper] = await shoppers(client, 1)
    row = await Integration.get(key_id=till.key_id)
    await ok(await till.post(visit("v1", shopper)), 201)
    off = await ok(await client.patch(f"/api/v1/admin/integrations/{row.id}", json={"active": False}, headers=root))
    assert off["is_active"] is False
    await refused(await till.post(visit("v2", shopper)), 401, "invalid_api_key")
    await ok(await client.patch(f"/api/v1/admin/integrations/{row.id}", json={"active": True}, headers=root))
    await ok(await till.post(visit("v2", shopper)), 201)
    entry = await audit_of("integration.update", row.id)
    assert (as_dict(entry.before), as_dict(entry.after)) == ({"is_active": False}, {"is_active": True})
    await refused(
        await client.patch("/api/v1/admin/integrations/9999", json={"active": False}, headers=root), 404, "not_found"
    )


async def test_a_rotated_key_keeps_the_old_secret_for_the_grace_period_only(client: TestClient) -> None:
    root = await superadmin(client)
    till = await pos(client)
    [shopper] = await shoppers(client, 1)
    row = await Integration.get(key_id=till.key_id)
    old_secret = till.secret

    rotated = await ok(await client.post(f"/api/v1/admin/integrations/{row.id}/rotate", headers=root))
    new_secret = rotated["secret"]
    assert new_secret != old_secret and rotated["key_id"] == till.key_id
    grace = client.server.app[SETTINGS].integration_secret_grace
    assert grace == 86_400
    ends = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs((ends - datetime.now(UTC)) - timedelta(seconds=grace)) < timedelta(seconds=30)
    listed = await ok(await client.get("/api/v1/admin/integrations", headers=root))
    assert new_secret not in json.dumps(listed) and old_secret not in json.dumps(listed)
    entry = await audit_of("integration.rotate", row.id)
    assert new_secret not in json.dumps([entry.before, entry.after])

    # Within the grace period both secrets sign valid events.
    await ok(await till.post(visit("v-old", shopper)), 201)
    await ok(await Pos(client, till.key_id, new_secret).post(visit("v-new", shopper)), 201)

    # After it, the old one is refused and the new one still works (time driven through
    # the ``now`` of the check, the signed timestamp moved along with it).
    redis, key = client.server.app[REDIS], client.server.app[SETTINGS].secret_key
    later = time.time() + grace + 60

    async def check(secret: str, nonce: str) -> Integration:
        ts = str(int(later))
        signature = integrations.sign(secret, ts, nonce, b"{}")
        return await integrations.authenticate(redis, key, 300, till.key_id, ts, nonce, signature, b"{}", now=later)

    with pytest.raises(errors.InvalidSignature):
        await check(old_secret, "nonce-old-after")
    assert (await check(new_secret, "nonce-new-after")).id == row.id
    # Just before the end, the old one still passes.
    later = ends.timestamp() - 1
    assert (await check(old_secret, "nonce-old-before")).id == row.id

    await refused(await client.post("/api/v1/admin/integrations/9999/rotate", headers=root), 404, "not_found")


async def test_with_no_grace_the_old_secret_is_refused_at_once(client_with: Any) -> None:
    client = await client_with(integration_secret_grace=0)
    root = await superadmin(client)
    till = await pos(client)
    [shopper] = await shoppers(client, 1)
    row = await Integration.get(key_id=till.key_id)
    rotated = await ok(await client.post(f"/api/v1/admin/integrations/{row.id}/rotate", headers=root))
    await refused(await till.post(visit("v-old", shopper)), 401, "invalid_signature")
    await ok(await Pos(client, till.key_id, rotated["secret"]).post(visit("v-new", shopper)), 201)


# --------------------------------------------------------------------------- audit of creations


async def test_creating_admins_staff_and_segments_is_audited(client: TestClient) -> None:
    root = await superadmin(client)
    resp = await client.post(
        "/api/v1/admin/admins",
        json={"username": "rita", "password": "a-long-password-1", "role": "reviewer", "display_name": "Rita"},
        headers=root,
    )
    rita = await ok(resp, 201)
    assert rita["display_name"] == "Rita"
    entry = await audit_of("admin.create", rita["id"])
    assert entry.before is None and as_dict(entry.after) == {
        "username": "rita", "display_name": "Rita", "role": "reviewer", "is_active": True,
    }  # fmt: skip
    assert "a-long-password-1" not in json.dumps(entry.after)

    shop = await store()
    staff_body = {"username": "sam", "password": "pw-sam-0123456789", "display_name": "Sam", "role": "clerk"}
    sam = await ok(await client.post("/api/v1/admin/staff", json=staff_body | {"store_id": shop.id}, headers=root), 201)
    assert as_dict((await audit_of("staff.create", sam["id"])).after)["store_id"] == shop.id

    segment = await ok(
        await client.post(
            "/api/v1/admin/segments",
            json={"name": "vips", "rule": {"tier": ["gold"]}},
            headers=root,
        ),
        201,
    )
    assert as_dict((await audit_of("segment.create", segment["id"])).after)["name"] == "vips"

    picture = image_bytes("PNG")
    media = await ok(await client.post("/api/v1/admin/media", data=form(picture), headers=root), 201)
    assert as_dict((await audit_of("media.create", media["id"])).after)["sha256"] == media["sha256"]
    # The same bytes again create nothing, and record nothing.
    await ok(await client.post("/api/v1/admin/media", data=form(picture), headers=root), 200)
    assert await AuditEntry.filter(action="media.create").count() == 1

    await ok(await client.post("/api/v1/admin/coupons/reconcile", json={}, headers=root))
    run = await AuditEntry.get(action="stock.reconcile")
    assert run.actor_kind == "admin" and run.entity_type == "coupon"


async def test_store_of_staff_moved_by_the_admin_is_the_one_the_new_token_carries(client: TestClient) -> None:
    """A store change ends the clerk's sessions: the old token was bound to the old store."""
    root = await superadmin(client)
    one, two = await store("S1"), await store("S2")
    clara, login = await staff_account(client, one.id)
    await ok(await client.patch(f"/api/v1/admin/staff/{clara.id}", json={"store_id": two.id}, headers=root))
    await refused(await client.get("/api/v1/staff/me", headers=bearer(login["access_token"])), 401, "invalid_token")
    relogin = await ok(
        await client.post(STAFF_LOGIN, json={"username": "clara", "password": "secret-clerk-0123456789"})
    )
    assert relogin["staff"]["store"]["id"] == two.id
    assert (await Store.get(id=two.id)).state == "open"
