"""Tests of services.core: what every domain shares."""
