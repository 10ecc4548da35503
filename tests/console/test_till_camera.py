"""The till's camera button with a camera that films a customer's QR code: Chromium's fake
capture device plays a video made from the wallet's QR PNG, html5-qrcode (this Chromium has
no BarcodeDetector) reads it, and the page previews the voucher, as if typed. Also: on a
page that is not secure the button says the camera needs HTTPS."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from services.accounts import operators as accounts
from tests.console.conftest import PHONE, new_page, shoot
from tests.wallet.fixtures import store as make_store
from tests.wallet.fixtures import vouchers

PASSWORD = "till-password-0123456789"


def write_y4m(png: bytes, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> None:
    """A short raw video (YUV4MPEG2, 4:2:0) of the image centred on white, which Chromium's
    fake capture device plays in a loop."""
    image = Image.open(io.BytesIO(png)).convert("L")
    image.thumbnail((height - 40, height - 40))
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
    chroma = bytes([128]) * (width * height // 4)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + canvas.tobytes() + chroma + chroma)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return tmp_path / "camera.y4m"


@pytest.fixture
def browser_args(video: Path) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


async def test_camera_reads_the_wallet_qr_code(console, browser, video):
    client = console.client
    shop = await make_store()
    await accounts.create_staff("clara", PASSWORD, "Clara", "clerk", shop.id)
    [held] = await vouchers(client)
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/qr.png", params={"size": 400}, headers=held.auth)
    assert resp.status == 200, await resp.text()
    # Written before the browser opens the camera (the fixture only names the file).
    write_y4m(await resp.read(), video)

    page = await new_page(browser, permissions=["camera"], **PHONE)
    await page.goto(console.url("/staff/"))
    await page.fill("input[name=username]", "clara")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("[data-test=login]")
    await page.click("[data-test=camera]")
    await page.wait_for_selector("[data-test=preview]", timeout=30_000)
    assert await page.inner_text("[data-test=preview-value]") == "立减 ¥10.00"
    assert "可以核销" in await page.inner_text("[data-test=verdict]")
    await shoot(page, "till-camera-360")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_camera_on_a_page_that_is_not_secure_says_https(console, browser):
    """Served on an address that is not loopback (the server's address seen through a
    host-resolver rule), the page is not a secure context: the button explains."""
    page = await new_page(browser, **PHONE)
    port = console.client.port
    await page.route("http://till.shop.test/**", lambda route: route.continue_(
        url=route.request.url.replace("http://till.shop.test", f"http://127.0.0.1:{port}")
    ))  # fmt: skip
    await page.goto("http://till.shop.test/staff/")
    assert await page.evaluate("window.isSecureContext") is False
    shop = await make_store()
    await accounts.create_staff("clara", PASSWORD, "Clara", "clerk", shop.id)
    await page.fill("input[name=username]", "clara")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("[data-test=login]")
    await page.click("[data-test=camera]")
    error = await page.inner_text("[data-test=camera-error]")
    assert error == "摄像头需要 HTTPS（或 localhost）才能使用，请用扫码枪或手动输入"  # noqa: RUF001  # Chinese punctuation
