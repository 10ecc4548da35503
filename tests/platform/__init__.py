"""Tests of the platform: start-up, settings, database and Redis connections,
middleware, routing, the OpenAPI document and bad input at the edge."""
