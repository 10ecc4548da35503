"""Tests of services.journey: a campaign's page for a customer, joining, points
exchange."""
