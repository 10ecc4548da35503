"""A Python client generated from the OpenAPI document (openapi-python-client, the tool
issue 14 found crashing on login and dropping the staff preview route) works against the
real server: a customer logs in and grabs a coupon, a clerk previews the voucher's QR.

The generator runs once per module (about 3 s); the generated package is imported from a
temporary directory and driven with its asyncio API on the test's event loop.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from handlers import all_routes
from server.keys import REDIS
from server.openapi import build_openapi
from services.accounts import operators as accounts
from services.stock import ClaimsWorker
from tests.helpers import cheap_password_hashing, login_code
from tests.stock.fixtures import live_coupon
from tests.wallet.fixtures import store

PACKAGE = "wxcampaign_generated_client"


def _generate(document: dict[str, Any], where: Path) -> str:
    """Run the generator on ``document`` into ``where/PACKAGE``; its output (warnings)."""
    (where / "openapi.json").write_text(json.dumps(document))
    # No post hooks: they shell out to a ruff on PATH, which formats but proves nothing here.
    # The generator knows no newline-delimited JSON (the bulk export): its client reads it as text.
    config = {"post_hooks": [], "content_type_overrides": {"application/x-ndjson": "text/plain"}}
    (where / "config.json").write_text(json.dumps(config))
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json", "--config", "config.json",
         "--output-path", PACKAGE, "--meta", "none"],
        cwd=where, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, importable while the module's tests run."""
    where = tmp_path_factory.mktemp("generated_client")
    # What create_app serves at /api/openapi.json (test_openapi_document.py reads it the same way).
    output = _generate(build_openapi(all_routes().routes, title="t", version="0"), where)
    # The generator skips only what it cannot model (binary image responses); a route or
    # model it drops for any other reason is a document defect, as the duplicate names were.
    warnings = output.split("WARNING parsing ")[1:]
    assert warnings, output  # the four PNG/image routes; guards the check below against a format change
    assert all("Unsupported content_type image/" in w for w in warnings), output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _api(package: ModuleType, module: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{module}")


async def test_login_grab_and_staff_preview_with_the_generated_client(
    client: TestClient, generated: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    cheap_password_hashing(monkeypatch)
    base_url = str(client.make_url("")).rstrip("/")
    models = _api(generated, "models")
    wechat_login = _api(generated, "api.auth.wechat_login")
    grab_coupon = _api(generated, "api.coupons.grab_coupon")
    staff_login = _api(generated, "api.staff.staff_login")
    preview_redemption = _api(generated, "api.staff.preview_redemption")
    voucher_qr = _api(generated, "api.wallet.voucher_qr")

    # Login: the code comes from the WeChat emulator, which is not part of the document.
    code = await login_code(client, "o_generated")
    async with generated.Client(base_url=base_url) as anonymous:
        resp = await wechat_login.asyncio_detailed(client=anonymous, body=models.WeChatLoginIn(code=code))
    assert resp.status_code == 200, resp.content
    login = resp.parsed
    assert isinstance(login, models.CustomerTokenOut)
    assert isinstance(login.user, models.UserOut) and login.user.id >= 1
    assert login.token_type == models.CustomerTokenOutTokenType.BEARER

    # Grab: the typed voucher is the coupon's.
    coupon = await live_coupon(client, face_value=1500)
    async with generated.AuthenticatedClient(base_url=base_url, token=login.access_token) as customer:
        resp = await grab_coupon.asyncio_detailed(coupon.template.id, client=customer)
    assert resp.status_code == 201, resp.content
    grabbed = resp.parsed
    assert isinstance(grabbed, models.GrabOut) and isinstance(grabbed.voucher, models.VoucherOut)
    assert grabbed.voucher.coupon_id == coupon.template.id
    assert grabbed.voucher.campaign_id == coupon.campaign.id
    assert grabbed.voucher.face_value == 1500 and grabbed.voucher.status == "available"
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    # The QR payload: the voucher's path id is its (text) claim id, as the document says.
    async with generated.AuthenticatedClient(base_url=base_url, token=login.access_token) as customer:
        resp = await voucher_qr.asyncio_detailed(grabbed.voucher.id, client=customer)
    assert resp.status_code == 200, resp.content
    assert isinstance(resp.parsed, models.QrOut)
    payload = resp.parsed.payload

    # Staff login and preview: the route a generator once dropped.
    shop = await store()
    password = "pw-gen-clerk-0123456789"
    await accounts.create_staff("gen_clerk", password, "Gen Clerk", "clerk", shop.id)
    async with generated.Client(base_url=base_url) as anonymous:
        resp = await staff_login.asyncio_detailed(
            client=anonymous, body=models.PasswordLoginIn(username="gen_clerk", password=password)
        )
    assert resp.status_code == 200, resp.content
    staff = resp.parsed
    assert isinstance(staff, models.StaffTokenOut)
    async with generated.AuthenticatedClient(base_url=base_url, token=staff.access_token) as clerk:
        resp = await preview_redemption.asyncio_detailed(client=clerk, body=models.RedemptionPreviewIn(payload=payload))
    assert resp.status_code == 200, resp.content
    preview = resp.parsed
    assert isinstance(preview, models.RedemptionPreviewOut)
    assert preview.redeemable is True and preview.refusal is None
    assert isinstance(preview.voucher, models.PreviewVoucherOut)
    assert preview.voucher.id == grabbed.voucher.id and preview.voucher.face_value == 1500
    assert preview.voucher.status == "available" and preview.voucher.used_at is None
    assert preview.customer.id == login.user.id
