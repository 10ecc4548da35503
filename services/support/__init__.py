"""Customer service: finding a customer, seeing everything about them, and the fixes
support makes (points, tier, voiding and granting vouchers), each audited.

It sits above every other domain (it reads wallets, ledgers, journeys, notifications and
sets tiers through ``activity``). The names below are the package's public face: other
packages, handlers and tests import them from here; its modules import each other
directly."""

from services.support.actions import (
    GrantOutcome,
    VoidOutcome,
    adjust_points,
    grant_voucher,
    set_tier,
    void_voucher,
)
from services.support.customers import Search, detail, ledger, mask_phone, search

__all__ = [
    "GrantOutcome",
    "Search",
    "VoidOutcome",
    "adjust_points",
    "detail",
    "grant_voucher",
    "ledger",
    "mask_phone",
    "search",
    "set_tier",
    "void_voucher",
]
