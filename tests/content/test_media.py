"""Image uploads: checked by pillow, stored by content hash, served with cache headers."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import random
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from models.media import MediaFile
from server.settings import Settings
from services.content import media
from tests.helpers import bearer, cheap_password_hashing, customer_login, error_of, logged_in_admin

UPLOAD = "/api/v1/admin/media"
#: Small enough that a too-large upload is cheap to send, large enough for real images.
MAX_UPLOAD = 256 * 1024
CACHE_CONTROL = "public, max-age=31536000, immutable"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, media_root=tmp_path / "media", max_upload_bytes=MAX_UPLOAD)


@pytest.fixture
async def operator(client: TestClient) -> dict[str, str]:
    login = await logged_in_admin(client, "operator")
    return bearer(login["access_token"])


def image_bytes(fmt: str, size: tuple[int, int] = (120, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (220, 40, 90)).save(out, fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed, tiny PNG whose header claims ``width`` x ``height`` (1-bit grey)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (1 + (width + 7) // 8))  # one row; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def form(data: bytes, filename: str = "banner.png", content_type: str = "image/png", name: str = "file") -> Any:
    body = aiohttp.FormData()
    body.add_field(name, data, filename=filename, content_type=content_type)
    return body


async def upload(client: TestClient, headers: dict[str, str], data: bytes, **kw: str) -> Any:
    return await client.post(UPLOAD, data=form(data, **kw), headers=headers)


async def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


def stored_files(media_dir: Path) -> list[Path]:
    """Everything under the media root, temporary files included."""
    return sorted(p for p in media_dir.rglob("*") if p.is_file()) if media_dir.exists() else []


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
async def test_upload_stores_and_serves_the_image(
    client: TestClient, operator: dict[str, str], settings: Settings, fmt: str, content_type: str, ext: str
) -> None:
    data = image_bytes(fmt, (321, 123))
    sha = hashlib.sha256(data).hexdigest()
    # The name and declared type are lies: only the bytes decide.
    resp = await upload(client, operator, data, filename="whatever.gif", content_type="application/octet-stream")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body == {
        "id": body["id"],
        "url": f"/media/{sha}.{ext}",
        "content_type": content_type,
        "width": 321,
        "height": 123,
        "size_bytes": len(data),
        "sha256": sha,
    }
    path = settings.media_dir / sha[:2] / f"{sha}.{ext}"
    assert path.read_bytes() == data
    assert stored_files(settings.media_dir) == [path]  # no temporary file left behind
    row = await MediaFile.get(id=body["id"])
    assert (row.sha256, row.content_type, row.size_bytes) == (sha, content_type, len(data))

    served = await client.get(body["url"])
    assert served.status == 200
    assert await served.read() == data
    assert served.headers["Content-Type"] == content_type
    assert served.headers["Cache-Control"] == CACHE_CONTROL
    assert served.headers["ETag"] == f'"{sha}"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"

    again = await client.get(body["url"], headers={"If-None-Match": f'"{sha}"'})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == f'"{sha}"'
    assert again.headers["Cache-Control"] == CACHE_CONTROL
    weak = await client.get(body["url"], headers={"If-None-Match": f'"other", W/"{sha}"'})
    assert weak.status == 304
    stale = await client.get(body["url"], headers={"If-None-Match": '"something-else"'})
    assert stale.status == 200 and await stale.read() == data


async def test_the_same_bytes_twice_are_one_row_and_one_file(
    client: TestClient, operator: dict[str, str], settings: Settings
) -> None:
    data = image_bytes("PNG")
    first = await upload(client, operator, data)
    assert first.status == 201
    superadmin = bearer((await logged_in_admin(client, "superadmin"))["access_token"])
    second = await upload(client, superadmin, data, filename="copy.png")
    assert second.status == 200, await second.text()
    assert await second.json() == await first.json()
    assert await MediaFile.all().count() == 1
    assert len(stored_files(settings.media_dir)) == 1


async def test_the_same_bytes_at_the_same_moment_are_one_row(
    client: TestClient, operator: dict[str, str], settings: Settings
) -> None:
    data = image_bytes("JPEG", (640, 480))
    responses = await asyncio.gather(*(upload(client, operator, data) for _ in range(4)))
    # However the requests interleave (the unique sha256 decides a tie), exactly one created it.
    assert sorted(r.status for r in responses) == [200, 200, 200, 201]
    assert len({(await r.json())["id"] for r in responses}) == 1
    assert await MediaFile.all().count() == 1
    assert len(stored_files(settings.media_dir)) == 1


async def test_a_lost_file_is_written_again_on_the_next_upload(
    client: TestClient, operator: dict[str, str], settings: Settings
) -> None:
    data = image_bytes("WEBP")
    body = await (await upload(client, operator, data)).json()
    [path] = stored_files(settings.media_dir)
    path.unlink()
    assert (await client.get(body["url"])).status == 404
    assert (await upload(client, operator, data)).status == 200
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"hello, I am text pretending to be a PNG\n" * 10, 415, "unsupported_media_type"),
        (b"", 415, "unsupported_media_type"),
        (image_bytes("GIF"), 415, "unsupported_media_type"),
        (image_bytes("BMP"), 415, "unsupported_media_type"),
        (image_bytes("PNG", (300, 200))[:-40], 422, "invalid_image"),
        (image_bytes("JPEG", (300, 200))[:-20], 422, "invalid_image"),
        (image_bytes("WEBP", (300, 200))[:-20], 422, "invalid_image"),
        (png_declaring(20000, 20000), 422, "image_too_large"),  # pillow: DecompressionBombError
        (png_declaring(10000, 9000), 422, "image_too_large"),  # pillow: DecompressionBombWarning
        (png_declaring(8001, 10), 422, "image_too_large"),
        (png_declaring(8000, 8000), 422, "image_too_large"),  # within MAX_SIDE, over MAX_PIXELS
    ],
    ids=[
        "text",
        "empty",
        "gif",
        "bmp",
        "truncated-png",
        "truncated-jpeg",
        "truncated-webp",
        "bomb",
        "bomb-warn",
        "wide",
        "too-many-pixels",
    ],
)
async def test_files_that_are_not_acceptable_images_are_refused_and_not_kept(
    client: TestClient, operator: dict[str, str], settings: Settings, data: bytes, status: int, code: str
) -> None:
    resp = await upload(client, operator, data, filename="x.png", content_type="image/png")
    await assert_error(resp, status, code)
    assert await MediaFile.all().count() == 0
    assert stored_files(settings.media_dir) == []


async def test_pixels_are_counted_from_the_header_before_decoding(
    client: TestClient, operator: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(self: Image.Image) -> Any:
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    width, height = 6001, 4000  # each side fine, 24,004,000 pixels in all: over MAX_PIXELS
    error = await assert_error(await upload(client, operator, png_declaring(width, height)), 422, "image_too_large")
    assert error["details"] == {
        "width": width, "height": height, "max_side": media.MAX_SIDE, "max_pixels": media.MAX_PIXELS,
    }  # fmt: skip
    assert stored_files(settings.media_dir) == []


async def test_concurrent_uploads_decode_a_few_at_a_time(
    client: TestClient, operator: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, running, peak = threading.Lock(), [0], [0]
    inspect = media.inspect_image

    def counted(*args: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.2)  # long enough for every upload to be waiting at once
            return inspect(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(media, "inspect_image", counted)
    rng = random.Random(14)
    images = []
    for i in range(8):  # noise does not compress: each file is near the upload limit
        out = io.BytesIO()
        Image.frombytes("RGB", (240, 300 + i), rng.randbytes(240 * (300 + i) * 3)).save(out, "PNG")
        images.append(out.getvalue())
    assert all(MAX_UPLOAD // 2 < len(data) <= MAX_UPLOAD for data in images)
    responses = await asyncio.gather(*(upload(client, operator, data) for data in images))
    assert [r.status for r in responses] == [201] * 8
    assert peak[0] == media.MAX_CONCURRENT_DECODES
    assert len(stored_files(settings.media_dir)) == 8  # every temporary file moved or removed


async def test_an_upload_over_the_limit_is_refused_while_streaming(
    client: TestClient, operator: dict[str, str], settings: Settings
) -> None:
    # A valid image header followed by padding: refused by size before pillow sees it.
    data = image_bytes("PNG") + b"\x00" * (MAX_UPLOAD + 1)
    error = await assert_error(await upload(client, operator, data), 413, "payload_too_large")
    assert error["details"] == {"max_bytes": MAX_UPLOAD}
    assert await MediaFile.all().count() == 0
    assert stored_files(settings.media_dir) == []
    # Exactly at the limit is allowed through to pillow (which finds a PNG with junk after it).
    exact = image_bytes("PNG")
    exact += b"\x00" * (MAX_UPLOAD - len(exact))
    assert (await upload(client, operator, exact)).status == 201


async def test_the_body_must_be_one_file_part(client: TestClient, operator: dict[str, str]) -> None:
    data = image_bytes("PNG")
    resp = await client.post(UPLOAD, data=data, headers={**operator, "Content-Type": "image/png"})
    await assert_error(resp, 415, "unsupported_media_type")
    resp = await client.post(UPLOAD, json={"file": "x"}, headers=operator)
    await assert_error(resp, 415, "unsupported_media_type")
    error = await assert_error(await upload(client, operator, data, name="image"), 422, "validation_failed")
    assert error["details"]["errors"][0]["field"] == "image"
    two = form(data)
    two.add_field("file", data, filename="again.png", content_type="image/png")
    error = await assert_error(await client.post(UPLOAD, data=two, headers=operator), 422, "validation_failed")
    assert error["details"]["errors"][0]["field"] == "file"
    empty = aiohttp.FormData(default_to_multipart=True)
    empty.add_field("note", "no file here")
    error = await assert_error(await client.post(UPLOAD, data=empty, headers=operator), 422, "validation_failed")
    assert error["details"]["errors"][0]["field"] == "note"
    headers = {**operator, "Content-Type": "multipart/form-data; boundary=xyz"}
    resp = await client.post(UPLOAD, data=b"--xyz\r\nnot a part at all", headers=headers)
    await assert_error(resp, 422, "validation_failed")
    unfinished = b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc'
    await assert_error(await client.post(UPLOAD, data=unfinished, headers=headers), 422, "validation_failed")
    resp = await client.post(UPLOAD, data=b"--xyz--\r\n", headers=headers)
    error = await assert_error(resp, 422, "validation_failed")
    assert error["details"]["errors"][0]["field"] == "file"


async def test_who_may_upload(client: TestClient) -> None:
    data = image_bytes("PNG")
    await assert_error(await client.post(UPLOAD, data=form(data)), 401, "unauthenticated")
    customer = await customer_login(client)
    await assert_error(await upload(client, bearer(customer["access_token"]), data), 403, "forbidden")
    reviewer = await logged_in_admin(client, "reviewer")
    await assert_error(await upload(client, bearer(reviewer["access_token"]), data), 403, "forbidden")
    assert await MediaFile.all().count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/media/..%2f..%2fetc%2fpasswd",
        "/media/..%2F..%2Fetc%2Fpasswd.png",
        "/media/abc.png",
        "/media/" + "0" * 64 + ".png",  # well-formed, never uploaded
        "/media/" + "A" * 64 + ".png",  # upper-case hex is not a name we make
        "/media/" + "0" * 64 + ".gif",
        "/media/" + "0" * 64 + ".png.gz",
        "/media/" + "0" * 63 + ".png",
        "/media/.upload-abc.tmp",
        "/media/%2e%2e/%2e%2e/etc/passwd",
    ],
)
async def test_unknown_or_malformed_media_names_are_404(client: TestClient, settings: Settings, path: str) -> None:
    # A real file sits in the media root, to show a malformed name does not reach it either.
    settings.media_dir.mkdir(parents=True)
    (settings.media_dir / "abc.png").write_bytes(image_bytes("PNG"))
    resp = await client.get(path)
    await assert_error(resp, 404, "not_found")


async def test_a_served_file_answers_a_different_extension_with_404(
    client: TestClient, operator: dict[str, str]
) -> None:
    body = await (await upload(client, operator, image_bytes("PNG"))).json()
    assert (await client.get(body["url"].replace(".png", ".webp"))).status == 404


async def test_the_openapi_document_describes_the_upload(client: TestClient) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    body = document["paths"][UPLOAD]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["file"] == {"type": "string", "format": "binary"}
    params = document["paths"]["/media/{sha256}.{ext}"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["type"] for p in params} == {"sha256": "string", "ext": "string"}
