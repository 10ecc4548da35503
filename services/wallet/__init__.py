"""A customer's vouchers: the wallet, rotating QR codes, redemption at the till and its
reversal, and expiry reminders."""
