"""Facts about the request itself that several handlers need."""

from __future__ import annotations

from aiohttp import web

from server.keys import SETTINGS


def client_address(request: web.Request) -> str:
    """The caller's IP. X-Forwarded-For is trusted only for TRUSTED_PROXY_HOPS proxies."""
    hops = request.app[SETTINGS].trusted_proxy_hops
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote or "unknown"
