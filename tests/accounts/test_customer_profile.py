"""The customer's profile and phone binding (both WeChat flows)."""

from __future__ import annotations

import base64

from models.customers import Customer
from models.stores import Store
from tests.helpers import bearer, customer_login, error_of

PHONE = "/api/v1/me/phone"


async def _encrypted(client, openid: str, data: dict, watermark_appid: str | None = None) -> dict:
    body = {"openid": openid, "data": data}
    if watermark_appid:
        body["watermark_appid"] = watermark_appid
    resp = await client.post("/_wechat/encrypted-data", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_bind_phone_with_a_phone_code(client):
    tokens = await customer_login(client, "o_alice")
    resp = await client.post("/_wechat/phone-code", json={"openid": "o_alice", "phone_number": "+86 13800138000"})
    code = (await resp.json())["code"]
    resp = await client.post(PHONE, json={"code": code}, headers=bearer(tokens["access_token"]))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["phone_number"] == "+86 13800138000"
    customer = await Customer.get(openid="o_alice")
    assert customer.phone_country_code == "86"
    assert customer.phone_bound_at is not None
    # The same code a second time is refused and changes nothing.
    resp = await client.post(PHONE, json={"code": code}, headers=bearer(tokens["access_token"]))
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "invalid_phone_code"


async def test_bind_phone_with_encrypted_data(client):
    tokens = await customer_login(client, "o_bob")
    payload = await _encrypted(
        client, "o_bob", {"phoneNumber": "13900139000", "purePhoneNumber": "13900139000", "countryCode": "86"}
    )
    resp = await client.post(
        PHONE,
        json={"encrypted_data": payload["encrypted_data"], "iv": payload["iv"]},
        headers=bearer(tokens["access_token"]),
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["phone_number"] == "13900139000"


async def test_encrypted_data_for_another_app_is_refused(client):
    tokens = await customer_login(client, "o_carol")
    payload = await _encrypted(client, "o_carol", {"phoneNumber": "13700137000"}, watermark_appid="wx_someone_else")
    resp = await client.post(
        PHONE,
        json={"encrypted_data": payload["encrypted_data"], "iv": payload["iv"]},
        headers=bearer(tokens["access_token"]),
    )
    assert resp.status == 400
    error = await error_of(resp)
    assert error["code"] == "phone_data_invalid"
    assert "another app" in error["message"]
    assert (await Customer.get(openid="o_carol")).phone_number is None


async def test_encrypted_data_under_an_old_session_key_is_refused(client):
    await customer_login(client, "o_dave")
    stale = await _encrypted(client, "o_dave", {"phoneNumber": "13600136000"})
    tokens = await customer_login(client, "o_dave")  # a new login: a new session_key
    resp = await client.post(
        PHONE,
        json={"encrypted_data": stale["encrypted_data"], "iv": stale["iv"]},
        headers=bearer(tokens["access_token"]),
    )
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "phone_data_invalid"


async def test_tampered_or_garbage_encrypted_data_is_refused(client):
    tokens = await customer_login(client, "o_erin")
    payload = await _encrypted(client, "o_erin", {"phoneNumber": "13500135000"})
    raw = bytearray(base64.b64decode(payload["encrypted_data"]))
    raw[0] ^= 0xFF
    cases = [
        {"encrypted_data": base64.b64encode(bytes(raw)).decode(), "iv": payload["iv"]},
        {"encrypted_data": "not base64 at all!", "iv": payload["iv"]},
        {"encrypted_data": payload["encrypted_data"], "iv": "c2hvcnQ="},
    ]
    for case in cases:
        resp = await client.post(PHONE, json=case, headers=bearer(tokens["access_token"]))
        assert resp.status == 400, case
        assert (await error_of(resp))["code"] == "phone_data_invalid"
    assert (await Customer.get(openid="o_erin")).phone_number is None


async def test_phone_body_needs_exactly_one_flow(client):
    tokens = await customer_login(client, "o_fay")
    for body in ({}, {"code": "x", "encrypted_data": "y", "iv": "z"}, {"encrypted_data": "y"}):
        resp = await client.post(PHONE, json=body, headers=bearer(tokens["access_token"]))
        assert resp.status == 422, body
        assert (await error_of(resp))["code"] == "validation_failed"


async def test_profile_update(client):
    tokens = await customer_login(client, "o_gus")
    auth = bearer(tokens["access_token"])
    store = await Store.create(code="SH01", name="Shanghai One", city="Shanghai", latitude=31.2, longitude=121.5)
    resp = await client.patch(
        "/api/v1/me",
        json={
            "nickname": "Gus",
            "interest_tags": ["coffee", "tea", "coffee"],
            "preferred_store_id": store.id,
            "city": "Shanghai",
        },
        headers=auth,
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["nickname"] == "Gus"
    assert body["interest_tags"] == ["coffee", "tea"]
    assert body["preferred_store_id"] == store.id
    # Only the fields sent change; null clears one.
    resp = await client.patch("/api/v1/me", json={"city": None}, headers=auth)
    body = await resp.json()
    assert body["city"] is None and body["nickname"] == "Gus"
    resp = await client.get("/api/v1/me", headers=auth)
    assert (await resp.json())["interest_tags"] == ["coffee", "tea"]


async def test_profile_update_with_an_unknown_store_changes_nothing(client):
    tokens = await customer_login(client, "o_hal")
    resp = await client.patch(
        "/api/v1/me", json={"nickname": "Hal", "preferred_store_id": 999}, headers=bearer(tokens["access_token"])
    )
    assert resp.status == 422
    error = await error_of(resp)
    assert error["details"]["errors"][0]["field"] == "preferred_store_id"
    assert (await Customer.get(openid="o_hal")).nickname is None


async def test_nicknames_are_normalised_and_deceptive_ones_refused(client):
    """Staff see the nickname at the till: it must read as what it is."""
    tokens = await customer_login(client, "o_ivy")
    auth = bearer(tokens["access_token"])
    refused = [
        "\u202eevI",  # right-to-left override: shows as "Ive"
        "Ivy\u2066x\u2069",  # isolates
        "I\u200fvy",  # right-to-left mark
        "\u200b\u200c\u200d",  # zero-width characters only
        "\u3164\u3164",  # Hangul fillers: blank to the eye
        "\u2800",  # braille blank
        "   ",
        "Ivy\u0007",  # a control character
        "\u00ad",  # a soft hyphen alone
    ]
    for nickname in refused:
        resp = await client.patch("/api/v1/me", json={"nickname": nickname}, headers=auth)
        assert resp.status == 422, (nickname, resp.status, await resp.text())
        error = await error_of(resp)
        assert error["code"] == "validation_failed"
        assert [e["field"] for e in error["details"]["errors"]] == ["nickname"], error
    assert (await Customer.get(openid="o_ivy")).nickname is None
    # Decomposed "é" (e + combining acute) is stored composed (NFC), trimmed; scripts of
    # every kind, and emoji joined by a zero-width joiner, stay allowed.
    for sent, stored in [
        ("  Rene\u0301e ", "Ren\u00e9e"),
        ("小明", "小明"),
        ("محمد", "محمد"),
        ("Ivy \U0001f469\u200d\U0001f4bb", "Ivy \U0001f469\u200d\U0001f4bb"),
    ]:
        resp = await client.patch("/api/v1/me", json={"nickname": sent}, headers=auth)
        assert resp.status == 200, (sent, await resp.text())
        assert (await resp.json())["nickname"] == stored
        assert (await Customer.get(openid="o_ivy")).nickname == stored
