"""Tests of services.wallet: the wallet, QR codes, redemption and expiry."""
