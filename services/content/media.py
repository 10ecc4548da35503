"""Uploaded campaign images: checked with pillow, stored by content hash under the media root.

Memory is bounded three ways: an upload is streamed to a temporary file under the media
root (``Incoming``), never held whole; its dimensions are read from the header before any
pixel is decoded (``MAX_SIDE`` a side, ``MAX_PIXELS`` in all); and at most
``MAX_CONCURRENT_DECODES`` images are decoded at once in this process. Peak decode memory
is then about ``MAX_CONCURRENT_DECODES x MAX_PIXELS x 4`` bytes (RGBA), whatever the
number of uploads in flight.

A file's name is its sha256 plus the extension of the format pillow found, so the same
bytes are stored once, a URL never changes meaning (clients may cache it forever), and a
requested name can be checked against a strict pattern instead of ever being joined into
a path as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from PIL import Image, UnidentifiedImageError
from tortoise.exceptions import IntegrityError

from models.media import MediaFile
from services.core import errors, media_url

#: The largest width or height accepted.
MAX_SIDE = 8000

#: The most pixels (width x height) accepted: 24 megapixels (6000 x 4000, a camera's
#: photo; far more than a banner or poster needs). Checked from the header before any
#: decoding, it bounds one decode to about 96 MB (RGBA). It is below pillow's own
#: decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), so an image pillow would warn
#: about is refused here anyway, and the bound holds even where that limit is lifted.
MAX_PIXELS = 24_000_000

#: How many images this process decodes at once (uploads beyond it wait their turn):
#: with ``MAX_PIXELS`` it bounds decode memory to about 2 x 96 MB.
MAX_CONCURRENT_DECODES = 2

assert MAX_PIXELS <= (Image.MAX_IMAGE_PIXELS or MAX_PIXELS), "MAX_PIXELS must stay under pillow's bomb limit"

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


def _check_dimensions(width: int, height: int) -> None:
    if not 0 < width <= MAX_SIDE or not 0 < height <= MAX_SIDE or width * height > MAX_PIXELS:
        raise errors.ImageTooLarge(
            f"the image is {width}x{height}; at most {MAX_SIDE} pixels a side and {MAX_PIXELS} in all",
            details={"width": width, "height": height, "max_side": MAX_SIDE, "max_pixels": MAX_PIXELS},
        )


def inspect_image(path: Path) -> ImageInfo:
    """What the image file at ``path`` holds, or an error saying why it is refused.

    CPU-bound (it decodes the whole image): call it off the event loop, through
    ``decode_slot`` so that few run at once. Raises ``UnsupportedMediaType`` (not a PNG,
    JPEG or WebP), ``InvalidImage`` (damaged or truncated) or ``ImageTooLarge`` (over
    ``MAX_SIDE`` a side or ``MAX_PIXELS`` in all, or a decompression bomb); the dimensions
    are checked from the header, before anything is decoded.
    """
    formats = tuple(FORMATS)
    try:
        # formats= keeps pillow from even trying its other (less hardened) parsers.
        # Image.open is lazy: it parses the header only, so .size costs no pixel memory.
        with Image.open(path, formats=formats) as probe:
            _check_dimensions(*probe.size)
            # Checks the structure (PNG chunks and their CRCs) without decoding pixels.
            probe.verify()
        # verify() leaves the image unusable: reopen to decode.
        with Image.open(path, formats=formats) as image:
            width, height = image.size
            fmt = image.format or ""
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
        # pillow refuses a header declaring over 2 x MAX_IMAGE_PIXELS outright, in
        # Image.open, before our own check can run; between 1x and 2x it only warns (an
        # error where warnings are errors, as in the tests), and MAX_PIXELS refuses it.
        raise errors.ImageTooLarge(
            f"the image declares too many pixels; at most {MAX_PIXELS}",
            details={"max_side": MAX_SIDE, "max_pixels": MAX_PIXELS},
        ) from None
    except Exception as exc:
        # Only pillow runs in the try block: whatever it raises on hostile or broken input
        # (OSError, SyntaxError, struct.error, ...) means the file cannot be used.
        raise errors.InvalidImage(details={"reason": str(exc)[:200]}) from None
    content_type, ext = FORMATS[fmt]
    return ImageInfo(format=fmt, content_type=content_type, ext=ext, width=width, height=height)


#: One semaphore per event loop (an asyncio.Semaphore belongs to the loop that first
#: waits on it; tests run several loops in one process).
_decode_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def decode_slot() -> asyncio.Semaphore:
    """The semaphore admitting ``MAX_CONCURRENT_DECODES`` decodes at once on this loop."""
    loop = asyncio.get_running_loop()
    slots = _decode_slots.get(loop)
    if slots is None:
        slots = _decode_slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_DECODES)
    return slots


async def decode(path: Path) -> ImageInfo:
    """``inspect_image`` in a thread, holding one of the ``MAX_CONCURRENT_DECODES`` slots."""
    async with decode_slot():
        task = asyncio.ensure_future(asyncio.to_thread(inspect_image, path))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # A thread cannot be stopped: the slot is kept until the decode ends, or
            # cancelled uploads would let more decodes than the bound run at once.
            while not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({task})
            raise


def file_path(media_dir: Path, sha256: str, ext: str) -> Path:
    """Where a file is stored: a two-character fan-out keeps directories small."""
    return media_dir / sha256[:2] / f"{sha256}.{ext}"


def url_of(sha256: str, ext: str) -> str:
    """The public path the file is served at (relative to this server): see
    ``services.core.media_url``, the one place it is derived."""
    return media_url(sha256, ext)


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


@dataclass
class Incoming:
    """An upload being received: streamed to a temporary file under the media root, hashed
    as it comes (so it is never held whole in memory).

    Use as a context manager: the temporary file is removed on exit unless ``store`` moved
    it into place. Its name starts with a dot, so it never matches a servable name.
    """

    media_dir: Path
    size: int = 0
    path: Path = field(init=False)
    _file: IO[bytes] = field(init=False)
    _hash: hashlib._Hash = field(init=False, default_factory=hashlib.sha256)

    def __post_init__(self) -> None:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        # In the media root itself, so moving it into place is a rename on one file system.
        fd, tmp = tempfile.mkstemp(dir=self.media_dir, prefix=".upload-", suffix=".tmp")
        self.path = Path(tmp)
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (a few KiB: written on the event loop, to the page cache)."""
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def flush(self) -> None:
        """Hand what was written to the OS, so the file can be read by its path."""
        self._file.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _keep_at(self, target: Path) -> None:
        """Move the finished file to ``target`` so that readers see either no file or the
        whole file. Blocking (fsync): call it off the event loop."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        # mkstemp makes the file 0600; a reverse proxy serving MEDIA_ROOT directly needs to read it.
        os.chmod(self.path, 0o644)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)

    def _ensure_at(self, target: Path) -> None:
        # Content-addressed: a file already there holds these very bytes (unless the media
        # root was tampered with), so it is only moved into place when missing.
        if not target.is_file():
            self._keep_at(target)


async def store(upload: Incoming, uploaded_by: int) -> tuple[MediaFile, bool]:
    """Check and keep an uploaded image; return its row and whether it is new.

    Precondition: ``upload`` is complete (every chunk written) and still open. The same
    bytes uploaded again (by anyone) return the first row, and the file is put back only if
    it went missing. The file is on disk before its row exists, so a row never points at
    nothing. Raises the errors of ``inspect_image``.
    """
    sha256, media_dir = upload.sha256, upload.media_dir
    existing = await MediaFile.get_or_none(sha256=sha256)
    if existing is not None:
        await asyncio.to_thread(upload._ensure_at, file_path(media_dir, sha256, ext_of(existing.content_type)))
        return existing, False
    await asyncio.to_thread(upload.flush)  # the decoder reads the file by its path
    info = await decode(upload.path)
    await asyncio.to_thread(upload._ensure_at, file_path(media_dir, sha256, info.ext))
    try:
        media = await MediaFile.create(
            sha256=sha256,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            size_bytes=upload.size,
            uploaded_by=uploaded_by,
        )
    except IntegrityError:
        # The same bytes were uploaded concurrently and the other request won the insert;
        # both wrote identical files, so its row is ours too.
        return await MediaFile.get(sha256=sha256), False
    return media, True
