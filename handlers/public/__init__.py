"""Routes anyone may call: liveness, readiness, the API documentation and uploaded media."""
