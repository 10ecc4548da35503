"""Signed access tokens: JWTs (HS256), stateless, short-lived, verified without I/O.

Every request but the public ones verifies one, the coupon grab included, so verifying
costs no database or Redis round trip and no generic JWT machinery: our tokens always
carry one fixed header, so a token whose header differs by a byte is refused before any
parsing (no algorithm confusion), and the signature is checked with one HMAC. That is
about ten times cheaper than a general-purpose decoder on this path. Revocation works
through the refresh token: a logged-out session stops at the access token's expiry
(ACCESS_TOKEN_TTL). Admin and staff tokens also carry their account's token epoch
(``epc``), which the router compares with the account's current one on each of their
requests (services.accounts.epochs): disabling an account stops its access tokens at
once. Customer tokens carry none and cost nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from functools import lru_cache
from typing import Any

from services.core import errors
from services.core.principal import Principal

_AUDIENCE = "wxcampaign"
_KINDS = frozenset(("customer", "staff", "admin"))
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_SHA256_BLOCK = 64
#: One decoder for every token: ``json.loads`` would sniff the encoding of bytes and
#: look up its default decoder on each call.
_CLAIMS = json.JSONDecoder()


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64(raw: bytes) -> bytes:
    # base64.urlsafe_b64encode, without its Python wrapper (every request signs or checks).
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _unb64(segment: bytes) -> bytes:
    # base64.urlsafe_b64decode, with its leniency (characters outside the alphabet are
    # skipped), without its wrapper; only ever given a payload whose signature matched.
    return binascii.a2b_base64(segment.translate(_FROM_URLSAFE) + b"=" * (-len(segment) % 4))


@lru_cache(maxsize=8)
def _signing_key(secret: str) -> bytes:
    # A purpose-specific key, so other uses of SECRET_KEY (QR signing) never share one.
    return hashlib.sha256(b"access-token:" + secret.encode()).digest()


@lru_cache(maxsize=8)
def _hmac_pads(secret: str) -> tuple[Any, Any]:
    """SHA-256 states that have absorbed the key XOR ipad and the key XOR opad (RFC 2104).

    HMAC hashes these two blocks for every message; copying a state that already absorbed
    them is the same computation at a third of the cost of ``hmac.new`` (which rebuilds
    them, and its Python wrapper, per call), and every request verifies a token.
    """
    key = _signing_key(secret).ljust(_SHA256_BLOCK, b"\0")  # a 32-byte key: padded, never hashed
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _sign(secret: str, signing_input: bytes) -> bytes:
    """HMAC-SHA256 of ``signing_input`` under the access-token key, base64url without padding."""
    inner, outer = _hmac_pads(secret)
    inner = inner.copy()
    inner.update(signing_input)
    outer = outer.copy()
    outer.update(inner.digest())
    return _b64(outer.digest())


def issue_access_token(secret: str, principal: Principal, ttl_seconds: int, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": str(principal.id),
        "knd": principal.kind,
        "aud": _AUDIENCE,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if principal.role is not None:
        claims["rol"] = principal.role
    if principal.store_id is not None:
        claims["sto"] = principal.store_id
    if principal.epoch:
        claims["epc"] = principal.epoch
    if principal.password_change:
        claims["pcr"] = True
    signing_input = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return (signing_input + b"." + _sign(secret, signing_input)).decode()


#: Tokens verified lately, by (secret, token): a customer sends the same token with every
#: request for its whole lifetime, and on the grab path the HMAC, base64 and JSON of a
#: fresh check cost more than the rest of the handler's own work. Only tokens that
#: passed every check are kept; expiry is still checked on every use. Bounded: cleared
#: when full (it refills at the cost of one full check per token).
#:
#: Each entry is one plain tuple of the expiry and the principal's fields (strings, ints,
#: bools and None), not the ``Principal`` itself: the garbage collector stops
#: tracking such a tuple after the first collection it survives, while a ``Principal``
#: (and a tuple holding one) stays tracked. Full, the cache would otherwise add 200,000
#: objects for every full collection to walk while it holds the event loop
#: (docs/operations.md, "Event-loop stalls"). The hit rebuilds the ``Principal``: 1.9 µs
#: against 0.3 µs for returning the cached one (timeit, 2026-12-04), under 0.3% of a grab.
_VERIFIED: dict[tuple[str, str], tuple[Any, ...]] = {}
_VERIFIED_MAX = 100_000


def verify_access_token(secret: str, token: str, now: float | None = None) -> Principal:
    """Return the principal, or raise TokenExpired / InvalidToken."""
    known = _VERIFIED.get((secret, token))
    if known is not None:
        if known[0] <= (now if now is not None else time.time()):
            raise errors.TokenExpired()
        return Principal(*known[1:])
    principal, exp = _verify(secret, token, now)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    # One flat tuple (a nested one would stay tracked one collection longer): the expiry,
    # then the fields in the dataclass's own order (its __init__'s), so Principal(*...) rebuilds it.
    _VERIFIED[(secret, token)] = (exp, *vars(principal).values())
    return principal


def _verify(secret: str, token: str, now: float | None) -> tuple[Principal, int]:
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise errors.InvalidToken() from None
    header, _, rest = raw.partition(b".")
    payload, _, signature = rest.partition(b".")
    if header != _HEADER or not payload or not hmac.compare_digest(signature, _sign(secret, header + b"." + payload)):
        raise errors.InvalidToken()
    try:
        # Signed by us, so UTF-8 JSON; a decode error is a ValueError all the same.
        claims = _CLAIMS.decode(_unb64(payload).decode())
    except ValueError:
        raise errors.InvalidToken() from None
    if not isinstance(claims, dict) or claims.get("aud") != _AUDIENCE:
        raise errors.InvalidToken()
    exp, sub, kind = claims.get("exp"), claims.get("sub"), claims.get("knd")
    if not isinstance(exp, int) or not isinstance(sub, str) or kind not in _KINDS:
        raise errors.InvalidToken()
    if not sub.isascii() or not sub.isdigit():  # isdigit alone takes "¹", which int() refuses
        raise errors.InvalidToken()
    if exp <= (now if now is not None else time.time()):
        raise errors.TokenExpired()
    role, store_id, epoch = claims.get("rol"), claims.get("sto"), claims.get("epc", 0)
    principal = Principal(
        kind=kind,
        id=int(sub),
        role=role if isinstance(role, str) else None,
        store_id=store_id if isinstance(store_id, int) else None,
        epoch=epoch if isinstance(epoch, int) else -1,  # not ours: older than any account's epoch
        password_change=claims.get("pcr") is True,
    )
    return principal, exp
