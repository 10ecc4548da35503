"""Failed-login throttling cannot be turned against an account's owner: failures lock the
(account, address) pair and the address, not the account, and each further lockout of
the same pair or address lasts twice as long."""

from __future__ import annotations

from typing import Any

import pytest

from server.keys import REDIS
from services.accounts import MAX_LOCKOUT_SECONDS, LoginLimiter
from services.core import errors
from tests.helpers import cheap_password_hashing, create_admin, error_of
from tests.wallet.fixtures import store

ADMIN_LOGIN = "/api/v1/admin/auth/login"
STAFF_LOGIN = "/api/v1/staff/auth/login"
PASSWORD = "the-owners-password-1"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _login(client: Any, path: str, username: str, password: str, address: str) -> Any:
    return await client.post(
        path, json={"username": username, "password": password}, headers={"X-Forwarded-For": address}
    )


@pytest.mark.parametrize("path", [ADMIN_LOGIN, STAFF_LOGIN])
async def test_an_attacker_cannot_lock_the_owner_out(client_with, path: str) -> None:
    client = await client_with(trusted_proxy_hops=1, login_max_failures=5)
    if path == ADMIN_LOGIN:
        await create_admin("olga", PASSWORD, "operator")
    else:
        from services.accounts import operators as accounts

        await accounts.create_staff("olga", PASSWORD, "Olga", "clerk", (await store()).id)
    attacker, owner = "203.0.113.66", "198.51.100.7"
    answers = [(await _login(client, path, "olga", f"guess-{i}", attacker)).status for i in range(12)]
    assert answers == [401] * 5 + [429] * 7
    # Not even the right password gets through from the attacker's address...
    locked = await _login(client, path, "olga", PASSWORD, attacker)
    assert locked.status == 429 and (await error_of(locked))["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) > 0
    # ...but the owner, elsewhere, logs in, even after a typo of their own.
    assert (await _login(client, path, "olga", "a-typo", owner)).status == 401
    assert (await _login(client, path, "olga", PASSWORD, owner)).status == 200, path


async def test_one_address_guessing_many_accounts_is_locked_and_others_are_not(client_with) -> None:
    client = await client_with(trusted_proxy_hops=1, login_max_failures=2)
    await create_admin("olga", PASSWORD, "operator")
    guesser = "203.0.113.66"
    # 4 × the per-account limit over accounts that each stay under it.
    for i in range(8):
        assert (await _login(client, ADMIN_LOGIN, f"user{i}", "x", guesser)).status == 401
    assert (await _login(client, ADMIN_LOGIN, "olga", PASSWORD, guesser)).status == 429
    assert (await _login(client, ADMIN_LOGIN, "olga", PASSWORD, "198.51.100.7")).status == 200


async def _wait_of(limiter: LoginLimiter, username: str, address: str) -> int:
    """The Retry-After of the attempt after ``max_failures`` failures."""
    for _ in range(limiter.max_failures):
        await limiter.acquire("admin", username, address)  # counted; never un-counted: a failure
    with pytest.raises(errors.TooManyAttempts) as refused:
        await limiter.acquire("admin", username, address)
    return int(refused.value.details["retry_after"])


async def _lockout_passes(client: Any) -> None:
    """Time passing, without waiting for it: every lock ends, and with it every failure
    count (counted over LOGIN_LOCKOUT_SECONDS, no longer than a lockout); strikes stay."""
    redis = client.server.app[REDIS]
    async for key in redis.scan_iter(match="login:*"):
        if not key.endswith(b":strikes"):
            await redis.delete(key)


async def test_each_lockout_of_a_pair_lasts_twice_as_long_up_to_a_day(client) -> None:
    limiter = LoginLimiter(client.server.app[REDIS], max_failures=3, lockout_seconds=900)
    waits = []
    for _ in range(9):
        waits.append(await _wait_of(limiter, "olga", "203.0.113.66"))
        await _lockout_passes(client)
    assert waits == [900, 1800, 3600, 7200, 14400, 28800, 57600, MAX_LOCKOUT_SECONDS, MAX_LOCKOUT_SECONDS]
    # A success from the pair forgets its strikes: the next lockout is the first again.
    await limiter.acquire("admin", "olga", "203.0.113.66")
    await limiter.record_success("admin", "olga", "203.0.113.66")
    assert await _wait_of(limiter, "olga", "203.0.113.66") == 900
    # Another address has its own count and strikes.
    assert await _wait_of(limiter, "olga", "198.51.100.7") == 900


async def test_the_address_backs_off_too(client) -> None:
    limiter = LoginLimiter(client.server.app[REDIS], max_failures=1, lockout_seconds=60)
    waits = []
    for round_ in range(3):
        for i in range(4):  # four accounts, one failure each: the address's limit
            await limiter.acquire("staff", f"user{round_}-{i}", "203.0.113.66")
        with pytest.raises(errors.TooManyAttempts) as refused:
            await limiter.acquire("staff", f"user{round_}-x", "203.0.113.66")
        waits.append(int(refused.value.details["retry_after"]))
        await _lockout_passes(client)
    assert waits == [60, 120, 240]
