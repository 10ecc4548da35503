"""Tests of services.automation: rules, triggers, actions and runs."""
