"""Tests of services.notify: subscribe messages, the outbox and the sender."""
