"""Uploaded campaign images: checked with pillow, stored by content hash under the media root.

A file's name is its sha256 plus the extension of the format pillow found, so the same
bytes are stored once, a URL never changes meaning (clients may cache it forever), and a
requested name can be checked against a strict pattern instead of ever being joined into
a path as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tortoise.exceptions import IntegrityError

from models.media import MediaFile
from services.core import errors

#: The largest width or height accepted. It also bounds the decode below: at most
#: 8000 x 8000 pixels are ever held in memory for one upload.
MAX_SIDE = 8000

#: pillow format -> (content type, file extension). Nothing else is accepted.
FORMATS: dict[str, tuple[str, str]] = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
CONTENT_TYPES: dict[str, str] = {ext: content_type for content_type, ext in FORMATS.values()}
EXTENSIONS: dict[str, str] = {content_type: ext for content_type, ext in FORMATS.values()}
ALLOWED_TYPES = tuple(sorted(CONTENT_TYPES.values()))

_NAME = re.compile(r"^([0-9a-f]{64})\.(png|jpg|webp)$")


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    ext: str
    width: int
    height: int


@dataclass(frozen=True)
class StoredFile:
    """Where a requested media name lives on disk (it may not exist)."""

    sha256: str
    path: Path
    content_type: str


def inspect_image(data: bytes) -> ImageInfo:
    """What image ``data`` holds, or an error saying why it is refused.

    CPU-bound (it decodes the whole image): call it off the event loop. Raises
    ``UnsupportedMediaType`` (not a PNG, JPEG or WebP), ``InvalidImage`` (damaged or
    truncated) or ``ImageTooLarge`` (a side over ``MAX_SIDE``, or a decompression bomb).
    """
    formats = tuple(FORMATS)
    try:
        # formats= keeps pillow from even trying its other (less hardened) parsers.
        with Image.open(io.BytesIO(data), formats=formats) as probe:
            # Checks the structure (PNG chunks and their CRCs) without decoding pixels.
            probe.verify()
        # verify() leaves the image unusable: reopen to read the size and decode.
        with Image.open(io.BytesIO(data), formats=formats) as image:
            width, height = image.size
            fmt = image.format or ""
            if not 0 < width <= MAX_SIDE or not 0 < height <= MAX_SIDE:
                raise errors.ImageTooLarge(
                    f"the image is {width}x{height}; at most {MAX_SIDE} pixels a side",
                    details={"width": width, "height": height, "max_side": MAX_SIDE},
                )
            if fmt == "JPEG":
                # Decoding at 1/8 scale still reads every byte (a truncated file fails)
                # with 1/64 of the memory.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            # verify() does nothing for JPEG and WebP, and PNG pixel data is only
            # checked by decoding it: a file that does not decode is refused here.
            image.load()
    except errors.AppError:
        raise
    except UnidentifiedImageError:
        # Not one of the three formats, whatever the file's name or declared type.
        raise errors.UnsupportedMediaType(
            "upload a PNG, JPEG or WebP image", details={"allowed": list(ALLOWED_TYPES)}
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # pillow refuses a header declaring over 2 x MAX_IMAGE_PIXELS outright; between 1x
        # and 2x it only warns (an error where warnings are errors, as in the tests). As
        # MAX_SIDE**2 is below pillow's default MAX_IMAGE_PIXELS, an image it merely warns
        # about still fails the MAX_SIDE check above.
        raise errors.ImageTooLarge(f"the image declares too many pixels; at most {MAX_SIDE} a side") from None
    except Exception as exc:
        # Only pillow runs in the try block: whatever it raises on hostile or broken input
        # (OSError, SyntaxError, struct.error, ...) means the file cannot be used.
        raise errors.InvalidImage(details={"reason": str(exc)[:200]}) from None
    content_type, ext = FORMATS[fmt]
    return ImageInfo(format=fmt, content_type=content_type, ext=ext, width=width, height=height)


def file_path(media_dir: Path, sha256: str, ext: str) -> Path:
    """Where a file is stored: a two-character fan-out keeps directories small."""
    return media_dir / sha256[:2] / f"{sha256}.{ext}"


def url_of(sha256: str, ext: str) -> str:
    """The public path the file is served at (relative to this server)."""
    return f"/media/{sha256}.{ext}"


def ext_of(content_type: str) -> str:
    """The extension of a stored file. Precondition: a content type of ``FORMATS``."""
    return EXTENSIONS[content_type]


def locate(media_dir: Path, name: str) -> StoredFile | None:
    """The stored file a requested name stands for, or None if the name is not one we make.

    Only names matching ``<64 hex>.<png|jpg|webp>`` get a path: nothing else a client
    sends (dots, slashes, encoded separators) ever reaches the file system.
    """
    match = _NAME.match(name)
    if match is None:
        return None
    sha256, ext = match.groups()
    return StoredFile(sha256=sha256, path=file_path(media_dir, sha256, ext), content_type=CONTENT_TYPES[ext])


def _write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` at ``target`` so that readers see either no file or the whole file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file is in the same directory, so os.replace is a rename on one file
    # system (atomic). Its name starts with a dot: it never matches a servable name.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file 0600; a reverse proxy serving MEDIA_ROOT directly needs to read it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _ensure_file(target: Path, data: bytes) -> None:
    # Content-addressed: a file already there holds these very bytes (unless the media
    # root was tampered with), so it is only written when missing.
    if not target.is_file():
        _write_atomically(target, data)


async def store(data: bytes, uploaded_by: int, media_dir: Path) -> tuple[MediaFile, bool]:
    """Check and keep an uploaded image; return its row and whether it is new.

    The same bytes uploaded again (by anyone) return the first row, and the file is
    rewritten only if it went missing. The file is on disk before its row exists, so a
    row never points at nothing. Raises the errors of ``inspect_image``.
    """
    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    existing = await MediaFile.get_or_none(sha256=sha256)
    if existing is not None:
        await asyncio.to_thread(_ensure_file, file_path(media_dir, sha256, ext_of(existing.content_type)), data)
        return existing, False
    info = await asyncio.to_thread(inspect_image, data)
    await asyncio.to_thread(_ensure_file, file_path(media_dir, sha256, info.ext), data)
    try:
        media = await MediaFile.create(
            sha256=sha256,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            size_bytes=len(data),
            uploaded_by=uploaded_by,
        )
    except IntegrityError:
        # The same bytes were uploaded concurrently and the other request won the insert;
        # both wrote identical files, so its row is ours too.
        return await MediaFile.get(sha256=sha256), False
    return media, True
