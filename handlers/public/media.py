"""Uploaded images, served to anyone (the mini program loads campaign banners from here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from server.access import PUBLIC
from server.keys import SETTINGS
from server.routing import RouteTable
from services.content import media
from services.core import errors

routes = RouteTable()

#: A name is its content's hash: the bytes behind a URL never change, so caches may keep
#: them for a year without asking again.
CACHE_CONTROL = "public, max-age=31536000, immutable"


class HashETagFileResponse(web.FileResponse):
    """A FileResponse whose ETag is the content's sha256.

    aiohttp derives its ETag from mtime and size, which differ between servers and after
    a restore; the hash is the same everywhere. Whatever aiohttp assigns is replaced.
    """

    def __init__(self, path: Path, sha256: str, headers: CIMultiDict[str]) -> None:
        super().__init__(path, headers=headers)
        self._sha256 = sha256

    @property
    def etag(self) -> Any:
        return web.FileResponse.etag.fget(self)  # type: ignore[attr-defined]  # mypy types a property read off its class as its value

    @etag.setter
    def etag(self, value: Any) -> None:
        web.FileResponse.etag.fset(self, self._sha256)  # type: ignore[attr-defined]  # as above: the property object


def _matches(request: web.Request, sha256: str) -> bool:
    """Whether If-None-Match names this file (weak comparison, as RFC 9110 asks for GET)."""
    tags = request.if_none_match
    if not tags:
        return False
    return any(tag.value in (sha256, "*") for tag in tags)


@routes.add(
    "GET", "/media/{sha256}.{ext}", access=PUBLIC, tags=("media",), media_type="image/*",
    summary="An uploaded image, cached for a year (ETag is the sha256; If-None-Match answers 304)",
    errors=(errors.NotFound,),
)  # fmt: skip
async def serve_media(request: web.Request) -> web.StreamResponse:
    # Rebuilt from both parts and matched whole against the strict pattern: the request's
    # text never reaches the file system any other way.
    name = f"{request.match_info['sha256']}.{request.match_info['ext']}"
    stored = media.locate(request.app[SETTINGS].media_dir, name)
    if stored is None or not await asyncio.to_thread(stored.path.is_file):
        raise errors.NotFound("no such media file")
    headers = CIMultiDict({"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})
    if _matches(request, stored.sha256):
        headers["ETag"] = f'"{stored.sha256}"'
        return web.Response(status=304, headers=headers)
    # Set here, from the name we validated, so aiohttp does not guess it from the path.
    headers["Content-Type"] = stored.content_type
    return HashETagFileResponse(stored.path, stored.sha256, headers)
