"""Tests of services.analytics: tracking, per-campaign reports, the CSV and the
overview."""
