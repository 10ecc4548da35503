"""Admin and staff accounts: creation and password login."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from tortoise.exceptions import IntegrityError

from models.admins import ADMIN_ROLES, Admin
from models.stores import STAFF_ROLES, StaffMember, Store
from services.accounts.login_limits import LoginLimiter
from services.accounts.passwords import hash_password, verify_password
from services.core import Principal, errors

Realm = Literal["admin", "staff"]


async def create_admin(username: str, password: str, role: str) -> Admin:
    if role not in ADMIN_ROLES:
        raise errors.ValidationFailed(f"role must be one of {', '.join(ADMIN_ROLES)}")
    password_hash = await hash_password(password)
    try:
        return await Admin.create(username=username, password_hash=password_hash, role=role)
    except IntegrityError:
        raise errors.Conflict(f"an admin named {username!r} already exists", details={"field": "username"}) from None


async def create_store(code: str, name: str, city: str, latitude: float, longitude: float) -> Store:
    try:
        return await Store.create(code=code, name=name, city=city, latitude=latitude, longitude=longitude)
    except IntegrityError:
        raise errors.Conflict(f"a store with code {code!r} already exists", details={"field": "code"}) from None


async def create_staff(username: str, password: str, display_name: str, role: str, store_id: int) -> StaffMember:
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
        return await StaffMember.create(
            username=username, password_hash=password_hash, display_name=display_name, role=role, store=store
        )
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
    if isinstance(account, StaffMember):
        return Principal(kind="staff", id=account.id, role=account.role, store_id=account.store_id)
    return Principal(kind="admin", id=account.id, role=account.role)


async def is_active(principal: Principal) -> bool:
    """Whether the account behind a principal may still hold a session."""
    if principal.kind == "admin":
        return await Admin.filter(id=principal.id, is_active=True).exists()
    if principal.kind == "staff":
        return await StaffMember.filter(id=principal.id, is_active=True, store__is_active=True).exists()
    return True
