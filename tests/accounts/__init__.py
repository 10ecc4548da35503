"""Tests of services.accounts: admin and staff accounts, customer login and profile,
tokens."""
