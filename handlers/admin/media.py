"""Image uploads (campaign banners and posters) by operators."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from handlers.common.actors import actor_of
from models.media import MediaFile
from server.access import admin
from server.keys import SETTINGS
from server.routing import RouteTable, json_response, principal_of
from services.content import media
from services.core import Out, audit, errors

routes = RouteTable()

UPLOADERS = admin("operator", "superadmin")

#: Bytes read from the part at a time while counting against MAX_UPLOAD_BYTES.
_CHUNK = 64 * 1024


class MediaOut(Out):
    id: int
    url: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str

    @classmethod
    def of(cls, row: MediaFile) -> MediaOut:
        return cls(
            id=row.id,
            url=media.url_of(row.sha256, media.ext_of(row.content_type)),
            content_type=row.content_type,
            width=row.width,
            height=row.height,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
        )


def _field_error(field: str, message: str) -> errors.AppError:
    return errors.ValidationFailed(
        f"{field}: {message}", details={"errors": [{"field": field, "message": message, "type": "multipart"}]}
    )


async def _read_part(part: BodyPartReader, limit: int, into: media.Incoming) -> None:
    """Stream the part into ``into``, refusing as soon as it passes ``limit`` (nothing more is read)."""
    while chunk := await part.read_chunk(_CHUNK):
        into.write(chunk)
        if into.size > limit:
            raise errors.PayloadTooLarge(f"the file is over {limit} bytes", details={"max_bytes": limit})


async def read_upload(request: web.Request, limit: int, into: media.Incoming) -> None:
    """Stream the one ``file`` part of a multipart/form-data body into ``into``, within
    ``limit`` bytes (the upload is never held whole in memory).

    The route table only parses JSON bodies, so this route reads its own. Other parts are
    refused like unknown fields in a JSON body.
    """
    if request.content_type != "multipart/form-data":
        raise errors.UnsupportedMediaType("send the image as multipart/form-data with one 'file' part")
    seen = False
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                name = part.name if isinstance(part, BodyPartReader) and part.name else "(part)"
                raise _field_error(name, "unexpected part; send only 'file'")
            if seen:
                raise _field_error("file", "given more than once")
            seen = True
            await _read_part(part, limit, into)
    except (ValueError, HttpProcessingError, BadContentDispositionHeader, BadContentDispositionParam) as exc:
        # How aiohttp's multipart parser reports a malformed body (boundary, part headers).
        # A bad Content-Disposition is only a warning, unless warnings are errors (as in
        # the tests): then it is refused like the rest rather than becoming a 500.
        raise _field_error("(body)", "malformed multipart body") from exc
    if not seen:
        raise _field_error("file", "missing: send the image as a part named 'file'")


@routes.add(
    "POST", "/api/v1/admin/media", access=UPLOADERS, tags=("admin",), response=MediaOut, status=201,
    also=(200,), request_media_type="multipart/form-data",
    summary="Upload a campaign image (PNG, JPEG or WebP): 201, or 200 when the same bytes were uploaded before",
    errors=(errors.PayloadTooLarge, errors.UnsupportedMediaType, errors.InvalidImage, errors.ImageTooLarge,
            errors.ValidationFailed),
)  # fmt: skip
async def upload_media(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if request.content_type != "multipart/form-data":
        # Refused before a temporary file is made for it.
        raise errors.UnsupportedMediaType("send the image as multipart/form-data with one 'file' part")
    with media.Incoming(settings.media_dir) as upload:
        await read_upload(request, settings.max_upload_bytes, upload)
        row, created = await media.store(upload, principal_of(request).id)
    if created:  # a repeat upload of the same bytes creates nothing
        after = {
            "sha256": row.sha256, "content_type": row.content_type, "width": row.width, "height": row.height,
            "size_bytes": row.size_bytes,
        }  # fmt: skip
        await audit.record(actor_of(request), "media.create", "media", row.id, None, after)
    return json_response(MediaOut.of(row), status=201 if created else 200)
