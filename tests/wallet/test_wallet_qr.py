"""The wallet's voucher detail and history, exact expiry and the expiry job, the code a
customer shows (QR payload, QR PNG, Code 128 barcode) decoded as a till would, the QR
settings, and what never reaches the log."""

from __future__ import annotations

import io
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from PIL import Image

from models.customers import Customer
from models.redemptions import VoucherReminder
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from server.settings import Settings, SettingsError
from services.stock import ClaimsWorker
from services.wallet import expiry as voucher_expiry
from services.wallet import qr
from tests.helpers import bearer, cheap_password_hashing, customer_login, error_of
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import REDEEM, Held, grab, qr_payload, staff_login, store, vouchers


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


def _decode(png: bytes) -> tuple[str, str]:
    image = Image.open(io.BytesIO(png))
    [found] = zxingcpp.read_barcodes(image)
    return found.text, found.format.name


async def test_qr_png_round_trip_redeems_a_voucher_not_yet_persisted(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    live = await live_coupon(client)
    [held] = await grab(client, live, await customers(client, 1), persist=False)
    assert await Voucher.all().count() == 0
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/qr.png", params={"size": "300"}, headers=held.auth)
    assert resp.status == 200 and resp.content_type == "image/png"
    assert resp.headers["Cache-Control"] == "no-store"
    png = await resp.read()
    assert Image.open(io.BytesIO(png)).size == (300, 300)
    payload, kind = _decode(png)
    assert kind == "QRCode" and payload.startswith("V1.K1.")
    # Shown at the till, persisted on demand: staff can redeem it at once.
    assert (await held.row()).status == "available"
    resp = await client.post(REDEEM, json={"payload": payload}, headers=clerk)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["voucher_id"] == held.claim_id
    # The worker arriving later changes nothing (the claim id is unique).
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    assert await Voucher.all().count() == 1 and (await held.row()).status == "used"
    for size in ("127", "1025", "big"):
        resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/qr.png", params={"size": size},
                                headers=held.auth)  # fmt: skip
        assert resp.status in (409, 422)
        assert (await error_of(resp))["code"] in ("validation_failed", "voucher_already_used")


async def test_barcode_round_trip_redeems(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/barcode.png", headers=held.auth)
    assert resp.status == 200 and resp.content_type == "image/png"
    assert resp.headers["Cache-Control"] == "no-store"
    number, kind = _decode(await resp.read())
    assert kind == "Code128" and number.isdigit() and len(number) == 16
    resp = await client.post(REDEEM, json={"payload": number, "order_ref": "POS-1"}, headers=clerk)
    assert resp.status == 201, await resp.text()
    assert (await held.row()).status == "used"
    again = await client.post(REDEEM, json={"payload": number}, headers=clerk)
    assert (await error_of(again))["code"] == "voucher_already_used"


def test_every_numeric_code_prefix_survives_the_barcode():
    """What the till scans is what was issued, for every leading pair of digits a code can
    have (python-barcode drops a leading "99": codes never start with it)."""
    for prefix in range(10, 99):
        code = f"{prefix}{secrets.randbelow(10**14):014d}"
        assert _decode(qr.barcode_png(code)) == (code, "Code128"), code
    codes = {qr.numeric_code_candidate() for _ in range(20_000)}
    assert all(len(c) == 16 and c.isdigit() and not c.startswith("99") for c in codes)


async def test_a_stale_barcode_number_is_expired(client_with):
    client = await client_with(qr_ttl_seconds=5)
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    [held] = await vouchers(client)
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/barcode.png", headers=held.auth)
    number, _ = _decode(await resp.read())
    redis = client.server.app[REDIS]
    voucher_id, issued_ms = (await redis.get(f"redeem-code:{number}")).decode().split(":")
    await redis.set(f"redeem-code:{number}", f"{voucher_id}:{int(issued_ms) - 6000}")  # issued 6 s earlier
    resp = await client.post(REDEEM, json={"payload": number}, headers=clerk)
    assert resp.status == 409 and (await error_of(resp))["code"] == "qr_expired"


async def test_the_qr_payload_answer(client):
    [held] = await vouchers(client)
    before = time.time()
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}/qr", headers=held.auth)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"payload", "expires_at", "refresh_after"}
    assert len(body["payload"]) <= 80 and body["payload"].startswith("V1.K1.")
    assert body["payload"] == body["payload"].upper()  # QR alphanumeric mode
    expires = datetime.fromisoformat(body["expires_at"]).timestamp()
    assert before + 58 <= expires <= time.time() + 61
    assert 0 < body["refresh_after"] < 60
    assert (await held.row()).code not in body["payload"]


async def test_codes_only_for_the_customers_own_available_vouchers(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    mine, theirs, old = await vouchers(client, 3)
    for suffix in ("", "/qr", "/qr.png", "/barcode.png"):
        resp = await client.get(f"/api/v1/me/vouchers/{theirs.claim_id}{suffix}", headers=mine.auth)
        assert resp.status == 404 and (await error_of(resp))["code"] == "voucher_not_found", suffix
        resp = await client.get(f"/api/v1/me/vouchers/NOSUCHCLAIM{suffix}", headers=mine.auth)
        assert resp.status == 404 and (await error_of(resp))["code"] == "voucher_not_found", suffix
        resp = await client.get(f"/api/v1/me/vouchers/bad%20id{suffix}", headers=mine.auth)
        assert resp.status == 404 and (await error_of(resp))["code"] == "voucher_not_found", suffix
    await client.post(REDEEM, json={"payload": await qr_payload(client, mine)}, headers=clerk)
    await Voucher.filter(claim_id=old.claim_id).update(valid_until=datetime.now(UTC) - timedelta(minutes=1))
    for suffix in ("/qr", "/qr.png", "/barcode.png"):
        resp = await client.get(f"/api/v1/me/vouchers/{mine.claim_id}{suffix}", headers=mine.auth)
        assert resp.status == 409 and (await error_of(resp))["code"] == "voucher_already_used"
        resp = await client.get(f"/api/v1/me/vouchers/{old.claim_id}{suffix}", headers=old.auth)
        assert resp.status == 409 and (await error_of(resp))["code"] == "voucher_expired"


async def test_detail_and_history(client):
    shop = await store("SH-A", "Store A")
    clerk = await staff_login(client, shop.id, "clara")
    manager = await staff_login(client, shop.id, "max", "manager")
    live = await live_coupon(client, stock=2)
    [held, pending] = await grab(client, live, await customers(client, 2), persist=False)
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    [pending] = await grab(client, await live_coupon(client), [pending.auth], persist=False)

    resp = await client.get(f"/api/v1/me/vouchers/{pending.claim_id}", headers=pending.auth)
    body = await resp.json()
    assert resp.status == 200 and body["pending"] is True and [e["event"] for e in body["history"]] == ["issued"]

    rid = (await (await client.post(REDEEM, json={"payload": await qr_payload(client, held)}, headers=clerk)).json())[
        "id"
    ]
    await client.post(f"/api/v1/staff/redemptions/{rid}/reverse", json={"reason": "oops"}, headers=manager)
    await client.post(REDEEM, json={"payload": await qr_payload(client, held)}, headers=clerk)
    resp = await client.get(f"/api/v1/me/vouchers/{held.claim_id}", headers=held.auth)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "used" and body["used_store_id"] == shop.id and body["used_store_name"] == "Store A"
    assert body["used_at"] and body["title"] == {"zh-CN": "立减"} and body["face_value"] == 1000
    events = body["history"]
    assert [e["event"] for e in events] == ["issued", "used", "reversed", "used"]
    assert events[1]["store_name"] == "Store A" and events[1]["redemption_id"] == rid
    assert "oops" not in await resp.text()
    listed = await (await client.get("/api/v1/me/vouchers?status=used", headers=held.auth)).json()
    assert [(v["id"], v["used_store_name"]) for v in listed["items"]] == [(held.claim_id, "Store A")]


async def test_expiry_is_exact_and_the_job_flips_states_and_queues_reminders(client):
    now = datetime.now(UTC)
    gone, soon, later = await vouchers(client, 3)
    await Voucher.filter(claim_id=gone.claim_id).update(
        issued_at=now - timedelta(days=7), valid_from=now - timedelta(days=7), valid_until=now - timedelta(seconds=1)
    )
    await Voucher.filter(claim_id=soon.claim_id).update(valid_until=now + timedelta(hours=5))
    await Voucher.filter(claim_id=later.claim_id).update(valid_until=now + timedelta(days=30))

    async def ids(held: Held, status: str) -> list[str]:
        resp = await client.get("/api/v1/me/vouchers", params={"status": status}, headers=held.auth)
        return [v["id"] for v in (await resp.json())["items"]]

    # Before any job ran: stored "available", shown expired.
    assert (await gone.row()).status == "available"
    assert await ids(gone, "available") == [] and await ids(gone, "expired") == [gone.claim_id]
    detail = await (await client.get(f"/api/v1/me/vouchers/{gone.claim_id}", headers=gone.auth)).json()
    assert detail["status"] == "expired" and detail["days_left"] == 0
    assert [e["event"] for e in detail["history"]] == ["issued", "expired"]
    assert await ids(soon, "available") == [soon.claim_id] and await ids(soon, "expired") == []

    redis = client.server.app[REDIS]
    report = await voucher_expiry.expiry_pass(redis, interval_seconds=60, reminder_hours=24)
    assert report == voucher_expiry.ExpiryReport(expired=1, reminders=1)
    assert (await gone.row()).status == "expired" and (await soon.row()).status == "available"
    [reminder] = await VoucherReminder.all()
    assert reminder.voucher_id == (await soon.row()).id and reminder.kind == "expiring_soon"  # type: ignore[attr-defined]
    assert reminder.sent_at is None
    assert await ids(gone, "expired") == [gone.claim_id]
    # Once per interval across processes; and a second run queues nothing twice.
    assert await voucher_expiry.expiry_pass(redis, interval_seconds=60, reminder_hours=24) is None
    await redis.delete(voucher_expiry.LOCK_KEY)
    report = await voucher_expiry.expiry_pass(redis, interval_seconds=60, reminder_hours=24)
    assert report == voucher_expiry.ExpiryReport(expired=0, reminders=0)
    assert await VoucherReminder.all().count() == 1


def test_qr_settings():
    base = {"SECRET_KEY": "s" * 40}
    derived = Settings.from_env(base)
    assert [kid for kid, _ in derived.qr_keys] == ["K1"] and derived.qr_ttl_seconds == 60
    assert derived.qr_keys[0][1] != derived.secret_key
    assert derived.redemption_reverse_window_seconds == 1800
    rotated = Settings.from_env({**base, "QR_SIGNING_KEYS": f"new:{'a' * 32}, old:{'b' * 32}", "QR_RETIRED_KEYS": "x"})
    assert [kid for kid, _ in rotated.qr_keys] == ["NEW", "OLD"] and rotated.qr_retired == frozenset({"X"})
    assert "a" * 32 not in repr(rotated)
    for env, needle in (
        ({"QR_SIGNING_KEYS": "k1"}, "QR_SIGNING_KEYS"),
        ({"QR_SIGNING_KEYS": "k1:short"}, "at least 32"),
        ({"QR_SIGNING_KEYS": f"k1:{'a' * 32},K1:{'b' * 32}"}, "twice"),
        ({"QR_SIGNING_KEYS": f"k1:{'a' * 32}", "QR_RETIRED_KEYS": "k1"}, "QR_RETIRED_KEYS"),
        ({"QR_RETIRED_KEYS": "not a kid"}, "QR_RETIRED_KEYS"),
        ({"QR_TTL_SECONDS": "1"}, "QR_TTL_SECONDS"),
        ({"REDEMPTION_REVERSE_WINDOW_SECONDS": "-1"}, "REDEMPTION_REVERSE_WINDOW_SECONDS"),
    ):
        with pytest.raises(SettingsError, match=needle) as raised:
            Settings.from_env({**base, **env})
        assert "a" * 32 not in str(raised.value) and "short" not in str(raised.value)
    production = {
        "APP_ENV": "production", "SECRET_KEY": "p" * 40, "DATABASE_URL": "postgres://u:p@db/x",
        "REDIS_URL": "redis://r:6379/0", "WECHAT_APPID": "wx1", "WECHAT_SECRET": "s",
    }  # fmt: skip
    with pytest.raises(SettingsError, match="QR_SIGNING_KEYS"):
        Settings.from_env(production)
    Settings.from_env({**production, "QR_SIGNING_KEYS": f"p1:{'c' * 40}"})


async def test_secrets_never_reach_the_log(client, caplog):
    """A whole grab, QR, barcode, preview and redeem flow at DEBUG: the customer's WeChat
    session key, the QR signing secret, the voucher code and the payloads never appear."""
    caplog.set_level(logging.DEBUG)
    login = await customer_login(client, "o_logged")
    auth = bearer(login["access_token"])
    session_key = (await Customer.get(openid="o_logged")).session_key
    assert session_key
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    live = await live_coupon(client)
    [held] = await grab(client, live, [auth], persist=False)
    payload = await qr_payload(client, held)
    png = await (await client.get(f"/api/v1/me/vouchers/{held.claim_id}/barcode.png", headers=auth)).read()
    number, _ = _decode(png)
    preview = await client.post("/api/v1/staff/redemptions/preview", json={"payload": payload}, headers=clerk)
    assert preview.status == 200
    tampered = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    assert (await client.post(REDEEM, json={"payload": tampered}, headers=clerk)).status == 422
    resp = await client.post(REDEEM, json={"payload": payload}, headers=clerk)
    assert resp.status == 201
    assert (await client.post(REDEEM, json={"payload": number}, headers=clerk)).status == 409
    await client.get(f"/api/v1/me/vouchers/{held.claim_id}", headers=auth)
    code = (await held.row()).code
    secret = client.server.app[SETTINGS].qr_keys[0][1]
    log = caplog.text
    assert "/api/v1/staff/redemptions" in log  # the access log did run at DEBUG
    for needle in (session_key, secret, code, payload, tampered, number):
        assert needle not in log
