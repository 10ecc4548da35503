"""Who can log in: admin and staff accounts, passwords, sessions and tokens, login
throttles, and customers' profiles.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.accounts.customers import call_wechat
from services.accounts.epochs import check_session, epoch_key
from services.accounts.login_limits import MAX_LOCKOUT_SECONDS, LoginLimiter
from services.accounts.passwords import MIN_PASSWORD_LENGTH, check_password_rules

__all__ = [
    "MAX_LOCKOUT_SECONDS",
    "MIN_PASSWORD_LENGTH",
    "LoginLimiter",
    "call_wechat",
    "check_password_rules",
    "check_session",
    "epoch_key",
]
