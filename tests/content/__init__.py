"""Tests of services.content: uploaded media."""
