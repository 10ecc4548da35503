"""A customer's vouchers: the wallet, rotating QR codes, redemption at the till and its
reversal, and expiry reminders.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.wallet.scan_limits import STAFF_FAILURES, STAFF_IN_FLIGHT, STORE_FAILURES, WINDOW_SECONDS, ScanLimiter
from services.wallet.vouchers import VoucherView

__all__ = [
    "STAFF_FAILURES",
    "STAFF_IN_FLIGHT",
    "STORE_FAILURES",
    "WINDOW_SECONDS",
    "ScanLimiter",
    "VoucherView",
]
