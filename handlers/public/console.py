"""The built console (``console/``, Vue + Vite), served on the API's own origin.

- ``/admin/…`` (operators) and ``/staff/…`` (the till page): each page's ``index.html``
  for every path below its prefix, so the page's client routes survive a reload
  (``/admin/campaigns/12``); ``Cache-Control: no-cache``, so a new build is picked up on
  the next load. A last path segment with a dot (``/admin/x.js``) names a file, and a
  missing file is a 404, never the page.
- ``/console/assets/{name}``: the pages' scripts and styles, named by Vite after their
  content hash, so they never change behind a URL and are cached for a year.
- A ``.gz`` copy beside a file (``scripts/console-build`` writes them) is sent, as is, to
  a client that accepts gzip (aiohttp's FileResponse does it).
- Not built (``CONSOLE_DIR`` has no pages): ``503 console_not_built`` saying what to
  install; the API runs regardless.

These are pages, not API routes: they are outside the route table and the OpenAPI
document (like Swagger UI's assets), and the console itself calls only the public API.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from server.keys import SETTINGS
from services.core import errors

#: The two pages: URL prefix → the page's folder in the build (vite.config.ts's inputs).
PAGES = ("admin", "staff")
#: Where Vite puts the hashed assets (vite.config.ts: base "/console/", assets under it).
ASSETS_PREFIX = "/console/assets/"
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INDEX_CACHE_CONTROL = "no-cache"
#: The pages' own headers: never framed by another site (the till's redeem button must not
#: be clickjacked), no type sniffing, no full URLs leaking to other origins.
PAGE_HEADERS = {
    "Cache-Control": INDEX_CACHE_CONTROL,
    "Content-Type": "text/html; charset=utf-8",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"

# Vite's asset names: name-hash.ext. Matched whole, so no path ever reaches the disk
# from the request's text other than a plain file name inside the assets folder.
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def _not_built(request: web.Request) -> web.StreamResponse:
    """503: one line a person can act on (HTML for a browser, the JSON error otherwise)."""
    exc = errors.ConsoleNotBuilt()
    if "text/html" in request.headers.get("Accept", ""):
        return web.Response(
            status=exc.status,
            text=f"<!doctype html><meta charset=utf-8><title>{exc.code}</title><p>{exc.message}</p>\n",
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )
    raise exc


def _page_handler(page: str) -> PageHandler:
    async def serve_page(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        if "." in tail.rsplit("/", 1)[-1]:
            # A file name under the page (an old asset path, a favicon): not the page.
            raise errors.NotFound("no such console file")
        index = request.app[SETTINGS].console_dir / page / "index.html"
        if not await asyncio.to_thread(index.is_file):
            return _not_built(request)
        return web.FileResponse(index, headers=PAGE_HEADERS)

    serve_page.__name__ = f"console_{page}_page"
    return serve_page


async def serve_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not _ASSET_NAME.match(name) or name.startswith("."):
        raise errors.NotFound("no such console asset")
    path: Path = request.app[SETTINGS].console_dir / "assets" / name
    if not await asyncio.to_thread(path.is_file):
        raise errors.NotFound("no such console asset")
    return web.FileResponse(path, headers={"Cache-Control": ASSET_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})


def add_console(app: web.Application) -> None:
    """Mount the console's pages and assets (called by create_app, after the API's routes)."""
    for page in PAGES:
        handler = _page_handler(page)
        # /admin → /admin/: the page's relative client routes need the trailing slash.
        app.router.add_get(f"/{page}", _redirect_to(f"/{page}/"), name=f"console_{page}_bare")
        app.router.add_get(f"/{page}/{{tail:.*}}", handler, name=f"console_{page}")
    app.router.add_get(ASSETS_PREFIX + "{name}", serve_asset, name="console_assets")


def _redirect_to(location: str) -> PageHandler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(location)

    return redirect
