"""Tests of services.activity: events moving progress, check-ins, integrations,
referrals."""
