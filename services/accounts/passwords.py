"""Password hashing with Argon2id (memory-hard). Hashing runs in a worker thread: it
takes tens of milliseconds of CPU by design and must not stall the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.core import errors

_hasher = PasswordHasher()  # argon2-cffi's RFC 9106 low-memory profile: 64 MiB, t=3
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


#: The shortest password a change or reset may set (NIST SP 800-63B asks for at least 8;
#: these accounts can redeem vouchers and edit campaigns, so a little more).
MIN_PASSWORD_LENGTH = 10

#: A small built-in list of the passwords most often found in breach corpora (and the
#: obvious ones for this product), compared case-insensitively. Not exhaustive: it stops
#: the first guesses an attacker tries.
COMMON_PASSWORDS = frozenset(
    {
        "1234567890", "12345678910", "0123456789", "1111111111", "0000000000", "1234512345",
        "1q2w3e4r5t", "1qaz2wsx3edc", "qwertyuiop", "qwerty1234", "qwerty12345", "asdfghjkl1",
        "password", "password1", "password12", "password123", "password1234", "passw0rd123",
        "iloveyou12", "abc1234567", "abcd123456", "abcdefghij", "a123456789", "aa12345678",
        "letmein123", "welcome123", "welcome1234", "admin12345", "admin123456", "administrator",
        "changeme123", "superadmin", "superadmin1", "wxcampaign", "wxcampaign1", "woaini1314",
        "5201314520", "dragon1234", "monkey1234", "football12", "baseball12", "sunshine12",
        "princess12", "starwars12", "trustno1234", "zaq12wsxcde",
    }
)  # fmt: skip


def check_password_rules(password: str, username: str) -> None:
    """Refuse a new password that breaks a rule, naming the rule in the error code:
    ``password_too_short`` (under MIN_PASSWORD_LENGTH characters),
    ``password_contains_username`` (is or contains the username, case-insensitively),
    ``password_too_common`` (in COMMON_PASSWORDS, case-insensitively)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise errors.PasswordTooShort(
            f"the new password needs at least {MIN_PASSWORD_LENGTH} characters",
            details={"rule": "min_length", "min_length": MIN_PASSWORD_LENGTH},
        )
    if username and username.lower() in password.lower():
        raise errors.PasswordContainsUsername(details={"rule": "not_username"})
    if password.lower() in COMMON_PASSWORDS:
        raise errors.PasswordTooCommon(details={"rule": "not_common"})
