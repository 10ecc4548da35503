"""Tests of services.stock: grabs, the claims stream, stock operations."""
