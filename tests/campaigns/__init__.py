"""Tests of services.campaigns: the builder, review and lifecycle, budgets, exclusivity,
the calendar."""
