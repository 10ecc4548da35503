"""A customer's vouchers: the wallet, rotating QR codes, redemption at the till and its
reversal, and expiry reminders.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.wallet.scan_limits import ScanLimiter
from services.wallet.vouchers import VoucherView

__all__ = [
    "ScanLimiter",
    "VoucherView",
]
