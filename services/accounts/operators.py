"""Admin and staff accounts: creation and password login."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models.admins import ADMIN_ROLES, Admin
from models.stores import STAFF_ROLES, STORE_STATES, StaffMember, Store
from services.accounts import epochs
from services.accounts.login_limits import LoginLimiter
from services.accounts.passwords import check_password_rules, hash_password, verify_password
from services.accounts.sessions import account_principal
from services.core import Actor, AnyRedis, Principal, audit, errors

Realm = Literal["admin", "staff"]


def admin_snapshot(account: Admin) -> dict[str, Any]:
    """What the audit log records of an admin (never the password hash)."""
    return {
        "username": account.username, "display_name": account.display_name, "role": account.role,
        "is_active": account.is_active,
    }  # fmt: skip


def _wechat_snapshot(account: Admin) -> dict[str, Any]:
    return {"wechat_openid": account.wechat_openid, "alert_wechat": account.alert_wechat}


def staff_snapshot(member: StaffMember) -> dict[str, Any]:
    return {
        "username": member.username, "display_name": member.display_name, "role": member.role,
        "store_id": member.store_id, "is_active": member.is_active,
    }  # fmt: skip


def store_snapshot(store: Store) -> dict[str, Any]:
    return {
        "code": store.code, "name": store.name, "city": store.city, "address": store.address,
        "latitude": store.latitude, "longitude": store.longitude, "state": store.state,
    }  # fmt: skip


async def create_admin(
    username: str, password: str, role: str, actor: Actor | None = None, *, display_name: str = ""
) -> Admin:
    """A new admin, audited (``admin.create``; the system when ``actor`` is None, as from
    the CLI)."""
    if role not in ADMIN_ROLES:
        raise errors.ValidationFailed(f"role must be one of {', '.join(ADMIN_ROLES)}")
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            account = await Admin.create(
                username=username, password_hash=password_hash, role=role, display_name=display_name
            )
            after = admin_snapshot(account)
            await audit.record(actor or Actor.system(), "admin.create", "admin", account.id, None, after)
            return account
    except IntegrityError:
        raise errors.Conflict(f"an admin named {username!r} already exists", details={"field": "username"}) from None


async def create_store(
    code: str, name: str, city: str, latitude: float, longitude: float, actor: Actor | None = None,
    *, address: str = "",
) -> Store:  # fmt: skip
    try:
        async with in_transaction():
            store = await Store.create(
                code=code, name=name, city=city, latitude=latitude, longitude=longitude, address=address
            )
            await audit.record(actor or Actor.system(), "store.create", "store", store.id, None, store_snapshot(store))
            return store
    except IntegrityError:
        raise errors.Conflict(f"a store with code {code!r} already exists", details={"field": "code"}) from None


async def create_staff(
    username: str, password: str, display_name: str, role: str, store_id: int, actor: Actor | None = None
) -> StaffMember:
    if role not in STAFF_ROLES:
        raise errors.ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}")
    store = await Store.get_or_none(id=store_id)
    if store is None:
        raise errors.ValidationFailed(
            f"store_id {store_id} does not exist",
            details={"errors": [{"field": "store_id", "message": "no such store", "type": "not_found"}]},
        )
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            member = await StaffMember.create(
                username=username, password_hash=password_hash, display_name=display_name, role=role, store=store
            )
            after = staff_snapshot(member)
            await audit.record(actor or Actor.system(), "staff.create", "staff", member.id, None, after)
            return member
    except IntegrityError:
        raise errors.Conflict(
            f"a staff account named {username!r} already exists", details={"field": "username"}
        ) from None


async def password_login(realm: Realm, username: str, password: str, address: str, limiter: LoginLimiter) -> Principal:
    """Check credentials under the failure limit; return the principal to issue tokens for."""
    # Counted before the password is checked: concurrent guesses cannot all pass the limit.
    await limiter.acquire(realm, username, address)
    account: Admin | StaffMember | None
    try:
        if "\x00" in username:
            account = None  # no account has one, and PostgreSQL refuses it in a query
        elif realm == "admin":
            account = await Admin.get_or_none(username=username)
        else:
            account = await StaffMember.get_or_none(username=username).select_related("store")
        ok = await verify_password(account.password_hash if account else None, password)
    except Exception:
        await limiter.release(realm, username, address)  # no verdict: not a failure
        raise
    if account is None or not ok or not account.is_active:
        raise errors.InvalidCredentials()  # the attempt stays counted as a failure
    if isinstance(account, StaffMember) and not account.store.is_active:
        raise errors.InvalidCredentials("this store is closed")
    await limiter.record_success(realm, username, address)
    account.last_login_at = datetime.now(UTC)
    await account.save(update_fields=["last_login_at"])
    return account_principal(account)


async def is_active(principal: Principal) -> bool:
    """Whether the account behind a principal may still hold a session."""
    if principal.kind == "admin":
        return await Admin.filter(id=principal.id, is_active=True).exists()
    if principal.kind == "staff":
        return await StaffMember.filter(id=principal.id, is_active=True, store__is_active=True).exists()
    return True


# --------------------------------------------------------------------------- editing accounts


async def update_admin(
    redis: AnyRedis, actor: Actor, admin_id: int, *, role: str | None = None, display_name: str | None = None,
    active: bool | None = None,
) -> Admin:  # fmt: skip
    """Change an admin's role, display name or active flag, audited (``admin.update``).

    Refuses (409 last_superadmin) a change that would leave no active superadmin. Race
    safe: every active superadmin row is locked (in id order, so two such changes never
    deadlock) before the count, so of two concurrent demotions of the last two, the second
    waits, then sees one left and is refused. (SQLite runs one transaction at a time.)
    A role change or a disable raises the token epoch: its sessions end at once."""
    if role is not None and role not in ADMIN_ROLES:
        raise errors.ValidationFailed(f"role must be one of {', '.join(ADMIN_ROLES)}")
    async with in_transaction():
        may_demote = (role is not None and role != "superadmin") or active is False
        supers: list[int] = []
        if may_demote:
            locked = await Admin.filter(role="superadmin", is_active=True).select_for_update().order_by("id")
            supers = [a.id for a in locked]
        account = await Admin.filter(id=admin_id).select_for_update().first()
        if account is None:
            raise errors.NotFound(f"no admin {admin_id}")
        before = admin_snapshot(account)
        if may_demote and account.id in supers and len(supers) <= 1:
            raise errors.LastSuperadmin(details={"admin_id": admin_id})
        if role is not None:
            account.role = role
        if display_name is not None:
            account.display_name = display_name
        if active is not None:
            account.is_active = active
        after = admin_snapshot(account)
        await account.save(update_fields=["role", "display_name", "is_active"])
        await audit.record(actor, "admin.update", "admin", account.id, before, after)
    if before["role"] != after["role"] or (before["is_active"] and not after["is_active"]):
        account.token_epoch = await epochs.bump(redis, "admin", account.id)
    return account


async def set_admin_wechat(
    actor: Actor, admin_id: int, *, openid: str | None = None, unbind: bool = False, alerts: bool | None = None
) -> Admin:
    """Bind (``openid``) or unbind (``unbind``) an admin's WeChat openid and turn its alert
    messages on or off (``alerts``), audited (``admin.wechat``). The openid is the admin's
    in the mini program: alerts are subscribe messages, sent when the admin accepted the
    alert template there. Refuses (422) alerts on without an openid bound (unbinding turns
    them off). NotFound when no such admin. Precondition: the caller may change this admin
    (itself, or a superadmin)."""
    async with in_transaction():
        account = await Admin.filter(id=admin_id).select_for_update().first()
        if account is None:
            raise errors.NotFound(f"no admin {admin_id}")
        before = _wechat_snapshot(account)
        if unbind:
            account.wechat_openid = None
            account.alert_wechat = False
        elif openid is not None:
            account.wechat_openid = openid
        if alerts is not None:
            account.alert_wechat = alerts
        if account.alert_wechat and account.wechat_openid is None:
            raise errors.ValidationFailed(
                "alert messages need a WeChat openid bound",
                details={"errors": [{"field": "alert_wechat", "message": "bind wechat_openid first", "type": "value"}]},
            )
        await account.save(update_fields=["wechat_openid", "alert_wechat"])
        await audit.record(actor, "admin.wechat", "admin", account.id, before, _wechat_snapshot(account))
    return account


async def update_staff(
    redis: AnyRedis, actor: Actor, staff_id: int, *, display_name: str | None = None, role: str | None = None,
    store_id: int | None = None, active: bool | None = None,
) -> StaffMember:  # fmt: skip
    """Change a staff member's name, role, store or active flag, audited (``staff.update``).
    A role or store change or a disable raises the token epoch: the tokens already held
    (bound to the old role and store) stop working on their next request."""
    if role is not None and role not in STAFF_ROLES:
        raise errors.ValidationFailed(f"role must be one of {', '.join(STAFF_ROLES)}")
    async with in_transaction():
        member = await StaffMember.filter(id=staff_id).select_for_update().first()
        if member is None:
            raise errors.NotFound(f"no staff member {staff_id}")
        if store_id is not None and not await Store.filter(id=store_id).exists():
            raise errors.ValidationFailed(
                f"store_id {store_id} does not exist",
                details={"errors": [{"field": "store_id", "message": "no such store", "type": "not_found"}]},
            )
        before = staff_snapshot(member)
        if display_name is not None:
            member.display_name = display_name
        if role is not None:
            member.role = role
        if store_id is not None:
            member.store_id = store_id
        if active is not None:
            member.is_active = active
        after = staff_snapshot(member)
        await member.save(update_fields=["display_name", "role", "store_id", "is_active"])
        await audit.record(actor, "staff.update", "staff", member.id, before, after)
    changed = before["role"] != after["role"] or before["store_id"] != after["store_id"]
    if changed or (before["is_active"] and not after["is_active"]):
        member.token_epoch = await epochs.bump(redis, "staff", member.id)
    return member


async def update_store(actor: Actor, store_id: int, changes: dict[str, Any]) -> Store:
    """Change a store's name, address, coordinates or opening state (``open``/``closed``:
    a closed store takes no redemptions), audited (``store.update``). Precondition:
    ``changes`` holds only those keys, validated."""
    allowed = {"name", "address", "latitude", "longitude", "state"}
    assert set(changes) <= allowed, changes
    if "state" in changes and changes["state"] not in STORE_STATES:
        raise errors.ValidationFailed(f"state must be one of {', '.join(STORE_STATES)}")
    async with in_transaction():
        store = await Store.filter(id=store_id).select_for_update().first()
        if store is None:
            raise errors.NotFound(f"no store {store_id}")
        before = store_snapshot(store)
        for name, value in changes.items():
            setattr(store, name, value)
        if changes:
            await store.save(update_fields=list(changes))
        await audit.record(actor, "store.update", "store", store.id, before, store_snapshot(store))
    return store


# --------------------------------------------------------------------------- passwords


async def _account(kind: Realm, account_id: int) -> Admin | StaffMember:
    account: Admin | StaffMember | None
    if kind == "admin":
        account = await Admin.get_or_none(id=account_id)
    else:
        account = await StaffMember.get_or_none(id=account_id)
    if account is None:
        raise errors.NotFound(f"no {kind} {account_id}")
    return account


async def change_password(
    redis: AnyRedis, actor: Actor, kind: Realm, account_id: int, old_password: str, new_password: str,
    *, limiter: LoginLimiter, address: str,
) -> Principal:  # fmt: skip
    """The account's own password change: the old one must match, the new one pass the
    rules (check_password_rules) and differ from the old. Ends every session the account
    holds (the epoch rises) and clears a pending reset; returns the principal to start the
    caller's new session with. Audited (``<kind>.password_change``, no secrets).

    A wrong old password counts as a failed login of the account (``limiter``): a stolen
    access token cannot be used to guess the password faster than the login allows."""
    account = await _account(kind, account_id)
    await limiter.acquire(kind, account.username, address)
    try:
        ok = await verify_password(account.password_hash, old_password)
    except Exception:
        await limiter.release(kind, account.username, address)  # no verdict: not a failure
        raise
    if not ok:
        raise errors.WrongPassword()  # stays counted as a failure
    await limiter.record_success(kind, account.username, address)
    check_password_rules(new_password, account.username)
    if new_password == old_password:
        raise errors.ValidationFailed(
            "the new password must differ from the old one",
            details={"errors": [{"field": "new_password", "message": "same as the old one", "type": "unchanged"}]},
        )
    password_hash = await hash_password(new_password)
    async with in_transaction():
        await type(account).filter(id=account.id).update(password_hash=password_hash, must_change_password=False)
        before = {"must_change_password": account.must_change_password, "password": "old"}
        after = {"must_change_password": False, "password": "changed"}
        await audit.record(actor, f"{kind}.password_change", kind, account.id, before, after)
    await epochs.bump(redis, kind, account.id)
    return account_principal(await _account(kind, account.id))


async def reset_password(redis: AnyRedis, actor: Actor, kind: Realm, account_id: int) -> str:
    """Give the account a random one-time password (returned, to be shown once) that must be
    changed at the next login; every session it holds ends. Audited
    (``<kind>.password_reset``, without the password)."""
    account = await _account(kind, account_id)
    one_time = secrets.token_urlsafe(12)  # 16 characters, 96 bits
    password_hash = await hash_password(one_time)
    async with in_transaction():
        await type(account).filter(id=account.id).update(password_hash=password_hash, must_change_password=True)
        before = {"must_change_password": account.must_change_password, "password": "old"}
        after = {"must_change_password": True, "password": "reset"}
        await audit.record(actor, f"{kind}.password_reset", kind, account.id, before, after)
    await epochs.bump(redis, kind, account.id)
    return one_time
