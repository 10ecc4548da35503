"""Where an uploaded image is served: its public URL, derived here and nowhere else.

A stored file's name is its sha256 plus the extension of its format
(``services.content.media``), and ``GET /media/{sha256}.{ext}`` (handlers/public/media.py)
serves it. Customer routes carry an image's URL beside its id; the campaign catalog
looks the URLs of a batch of campaigns up in one query (``urls_of``) and keeps them in
its snapshots, so a feed page derives none per card.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.media import MediaFile

#: content type -> the extension a stored file of that type has.
EXTENSIONS: dict[str, str] = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def media_url(sha256: str, ext: str) -> str:
    """The public path the file is served at (relative to this server's origin)."""
    return f"/media/{sha256}.{ext}"


def media_url_for(sha256: str, content_type: str) -> str:
    """``media_url`` from a stored row's content type. Precondition: one of ``EXTENSIONS``."""
    return media_url(sha256, EXTENSIONS[content_type])


async def urls_of(media_ids: Iterable[int | None]) -> dict[int, str]:
    """The URLs of these media ids in one query (ids with no file are left out)."""
    ids = sorted({i for i in media_ids if i is not None})
    if not ids:
        return {}
    rows = await MediaFile.filter(id__in=ids).values_list("id", "sha256", "content_type")
    return {int(i): media_url_for(str(sha), str(ct)) for i, sha, ct in rows if ct in EXTENSIONS}
