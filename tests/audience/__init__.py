"""Tests of services.audience: targeting rules, segments and customer facts."""
