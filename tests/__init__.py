"""The test suite: shared fixtures (conftest), helpers and the real servers it starts
(infra); one package per domain."""
