"""Facts about the request itself that several handlers need."""

from __future__ import annotations

import re

from aiohttp import web

from server.keys import SETTINGS
from services.core import errors

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def client_address(request: web.Request) -> str:
    """The caller's IP. X-Forwarded-For is trusted only for TRUSTED_PROXY_HOPS proxies."""
    hops = request.app[SETTINGS].trusted_proxy_hops
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote or "unknown"


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` header, None when absent; one that is not 1-64
    characters of ``A-Z a-z 0-9 _ . : -`` is a 422 naming the header."""
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise errors.ValidationFailed(
            "Idempotency-Key: 1-64 characters of A-Z a-z 0-9 _ . : -",
            details={"errors": [{"field": "Idempotency-Key", "message": "invalid", "type": "header"}]},
        )
    return value
