"""The code a customer shows at the till: a signed QR payload or a short numeric code
(services/wallet/qr.py), issued only for the customer's own voucher while it is available.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from models.vouchers import Voucher
from services.core import AnyRedis, errors
from services.stock import CouponCache, Stock
from services.wallet import qr
from services.wallet import vouchers as wallet
from services.wallet.redemption_checks import CodeConfig, already_used


@dataclass(frozen=True)
class IssuedCode:
    payload: str
    expires_at: datetime
    refresh_after: int


def refresh_after(ttl: int) -> int:
    """Seconds after which the app should fetch a fresh code: a quarter of the lifetime
    early, so a code being scanned never lapses mid-scan."""
    return max(1, ttl - max(1, ttl // 4))


async def _showable(customer_id: int, claim_id: str, stock: Stock, cache: CouponCache) -> Voucher:
    voucher = await wallet.ensure_persisted(customer_id, claim_id, stock, cache)
    status = wallet.effective_status(voucher.status, voucher.valid_until, datetime.now(UTC))
    if status == "used":
        raise await already_used(voucher)
    if status == "expired":
        raise errors.VoucherExpired(details={"valid_until": voucher.valid_until.isoformat()})
    if status != "available":
        raise errors.VoucherNotFound("the voucher was withdrawn")
    return voucher


async def qr_code(customer_id: int, claim_id: str, stock: Stock, cache: CouponCache, config: CodeConfig) -> IssuedCode:
    """A fresh signed payload for the customer's own, available voucher."""
    voucher = await _showable(customer_id, claim_id, stock, cache)
    issued = int(time.time())
    payload = qr.mint(config.keyring, voucher.id, issued)
    return IssuedCode(payload, datetime.fromtimestamp(issued + config.ttl, UTC), refresh_after(config.ttl))


async def numeric_code(
    customer_id: int, claim_id: str, stock: Stock, cache: CouponCache, redis: AnyRedis, ttl: int
) -> IssuedCode:
    """A fresh numeric code (for a Code 128 barcode) for the customer's own, available voucher."""
    voucher = await _showable(customer_id, claim_id, stock, cache)
    code, expires = await qr.mint_numeric(redis, voucher.id, ttl)
    return IssuedCode(code, datetime.fromtimestamp(expires, UTC), refresh_after(ttl))
