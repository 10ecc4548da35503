"""The code a customer shows at the till: a short-lived signed QR payload, or a short-lived
numeric code for 1-D scanners, and their images.

QR payload, version 1 (upper case, digits and "." only, so a QR code holds it in its
compact alphanumeric mode)::

    V1.<kid>.<voucher id, base 36>.<issued at, unix seconds, base 36>.<signature>

The signature is HMAC-SHA256 over everything before the last dot with the secret of key
``kid``, truncated to 15 bytes (120 bits) and written in base 32 (24 characters). A
payload is about 50 characters. It is refused when its key is unknown or retired, its
signature does not match, it was issued in the future (beyond a few seconds of clock
skew) or more than ``ttl`` seconds ago.

Numeric codes are 16 random digits mapped in Redis to the voucher, living as long as a
QR payload; the mapping is kept a while longer so a stale code is told apart from a
mistyped one.

Nothing here logs, and no exception message carries a payload, a code or a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from services.core import AnyRedis, errors, text

VERSION = "V1"
#: Seconds a payload may claim to come from the future (clocks of several processes).
CLOCK_SKEW_SECONDS = 5
_SIG_BYTES = 15
_PAYLOAD = re.compile(r"^V1\.([A-Z0-9]{1,8})\.([0-9A-Z]{1,13})\.([0-9A-Z]{1,8})\.([A-Z2-7]{24})$")
NUMERIC_DIGITS = 16
_NUMERIC = re.compile(r"^[0-9]{16}$")
#: A numeric code's mapping outlives its validity by this much, so a stale code is
#: answered qr_expired rather than qr_invalid.
_NUMERIC_GRACE_SECONDS = 600
QR_SIZE_MIN, QR_SIZE_MAX = 128, 1024


@dataclass(frozen=True)
class Keyring:
    """The signing key (first) and every key that still verifies; retired ids refused."""

    signer: str
    secrets: dict[str, bytes]
    retired: frozenset[str]

    @classmethod
    def of(cls, keys: tuple[tuple[str, str], ...], retired: frozenset[str]) -> Keyring:
        return cls(signer=keys[0][0], secrets={kid: secret.encode() for kid, secret in keys}, retired=retired)


@lru_cache(maxsize=16)
def keyring_for(keys: tuple[tuple[str, str], ...], retired: frozenset[str]) -> Keyring:
    """The keyring of these settings (``Settings.qr_keys``, ``Settings.qr_retired``)."""
    return Keyring.of(keys, retired)


def _b36(value: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out


def _sign(secret: bytes, message: str) -> str:
    mac = hmac.new(secret, message.encode(), hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.b32encode(mac).decode()


def mint(keyring: Keyring, voucher_id: int, issued_at: int, kid: str | None = None) -> str:
    """A payload for ``voucher_id`` issued at ``issued_at`` (unix seconds), signed with
    the current key (or ``kid``: tests mint with old keys)."""
    kid = kid or keyring.signer
    body = f"{VERSION}.{kid}.{_b36(voucher_id)}.{_b36(issued_at)}"
    return f"{body}.{_sign(keyring.secrets[kid], body)}"


@dataclass(frozen=True)
class Verified:
    voucher_id: int
    issued_at: int


def verify(keyring: Keyring, payload: str, ttl: int, now: float | None = None, *, check_age: bool = True) -> Verified:
    """The voucher a payload names, or QrInvalid / QrExpired. ``check_age=False`` only
    checks the signature (replays of an idempotent redemption may come late)."""
    match = _PAYLOAD.match(payload)
    if match is None:
        raise errors.QrInvalid(details={"reason": "format"})
    kid, voucher_b36, issued_b36, signature = match.groups()
    if kid in keyring.retired:
        raise errors.QrInvalid("the code was signed with a retired key", details={"reason": "retired_key"})
    secret = keyring.secrets.get(kid)
    if secret is None:
        raise errors.QrInvalid("the code was signed with an unknown key", details={"reason": "unknown_key"})
    body = payload[: payload.rindex(".")]
    if not hmac.compare_digest(_sign(secret, body), signature):
        raise errors.QrInvalid("the code's signature does not match", details={"reason": "signature"})
    issued_at = int(issued_b36, 36)
    voucher_id = int(voucher_b36, 36)
    if check_age:
        now = time.time() if now is None else now
        if issued_at > now + CLOCK_SKEW_SECONDS:
            raise errors.QrInvalid("the code was issued in the future", details={"reason": "clock"})
        if now >= issued_at + ttl:
            raise errors.QrExpired(details={"expired_at": issued_at + ttl})
    return Verified(voucher_id, issued_at)


def is_numeric(payload: str) -> bool:
    return _NUMERIC.match(payload) is not None


def _numeric_key(code: str) -> str:
    return f"redeem-code:{code}"


def numeric_code_candidate() -> str:
    """16 random digits from 1000… to 9899…: never a leading "99", which python-barcode
    0.16's Code 128 encoder drops (it writes 9912… as 12…, so the till would scan another
    number). tests/wallet/test_wallet_qr.py renders and decodes every possible prefix."""
    return str(10**15 + secrets.randbelow(89 * 10**14))


async def mint_numeric(redis: AnyRedis, voucher_id: int, ttl: int, now: float | None = None) -> tuple[str, int]:
    """A fresh 16-digit code for ``voucher_id`` and its expiry (unix seconds)."""
    now = time.time() if now is None else now
    issued_ms = int(now * 1000)
    for _ in range(8):
        code = numeric_code_candidate()
        if await redis.set(_numeric_key(code), f"{voucher_id}:{issued_ms}", nx=True, ex=ttl + _NUMERIC_GRACE_SECONDS):
            return code, issued_ms // 1000 + ttl
    raise RuntimeError("could not find a free numeric code")  # 10^16 codes: never in practice


async def resolve_numeric(
    redis: AnyRedis, code: str, ttl: int, now: float | None = None, *, check_age: bool = True
) -> int:
    """The voucher a numeric code stands for, or QrInvalid (unknown) / QrExpired."""
    raw = await redis.get(_numeric_key(code))
    if raw is None:
        raise errors.QrInvalid("unknown or long-expired code", details={"reason": "unknown_code"})
    voucher_id, issued_ms = text(raw).split(":")
    if check_age:
        now = time.time() if now is None else now
        if now * 1000 >= int(issued_ms) + ttl * 1000:
            raise errors.QrExpired(details={"expired_at": int(issued_ms) // 1000 + ttl})
    return int(voucher_id)


async def resolve(keyring: Keyring, redis: AnyRedis, payload: str, ttl: int, *, check_age: bool = True) -> int:
    """The voucher id behind a scanned QR payload or a typed/scanned numeric code."""
    payload = payload.strip()
    if is_numeric(payload):
        return await resolve_numeric(redis, payload, ttl, check_age=check_age)
    return verify(keyring, payload, ttl, check_age=check_age).voucher_id


# --------------------------------------------------------------------------- images


def qr_png(payload: str, size: int) -> bytes:
    """A size-by-size PNG of the payload's QR code (whole modules, centred, quiet zone)."""
    import qrcode
    from PIL import Image

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=1)
    code.add_data(payload, optimize=0)
    code.make(fit=True)
    modules = code.modules_count + 2 * code.border
    code.box_size = max(1, size // modules)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("L")
    canvas = Image.new("L", (size, size), 255)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def barcode_png(code: str) -> bytes:
    """A Code 128 PNG of a numeric code, digits printed under the bars."""
    from barcode import Code128
    from barcode.writer import ImageWriter

    out = io.BytesIO()
    Code128(code, writer=ImageWriter()).write(
        out, options={"module_width": 0.3, "module_height": 12.0, "quiet_zone": 4.0, "font_size": 8, "dpi": 200}
    )
    return out.getvalue()
