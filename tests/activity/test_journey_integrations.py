"""Integrations: created by a superadmin with a secret shown once, and every event request
signed (HMAC-SHA256), fresh (timestamp) and used once (nonce)."""

from __future__ import annotations

import json
import time

from models.journey import Integration, IntegrationEvent
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.journey.fixtures import Pos, pos, shoppers, visit

EVENTS = "/api/v1/integrations/events"


async def test_a_superadmin_creates_an_integration_and_sees_the_secret_once(client, monkeypatch):
    cheap_password_hashing(monkeypatch)
    root = await logged_in_admin(client, "superadmin")
    operator = await logged_in_admin(client, "operator")
    resp = await client.post(
        "/api/v1/admin/integrations", json={"name": "pos-main"}, headers=bearer(root["access_token"])
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["key_id"].startswith("ik_") and created["secret"].startswith("sk_")
    row = await Integration.get(id=created["id"])
    assert created["secret"] not in row.secret_encrypted  # encrypted at rest
    listed = await (await client.get("/api/v1/admin/integrations", headers=bearer(root["access_token"]))).json()
    assert [i["key_id"] for i in listed["items"]] == [created["key_id"]]
    assert "secret" not in listed["items"][0]
    again = await client.post(
        "/api/v1/admin/integrations", json={"name": "pos-main"}, headers=bearer(root["access_token"])
    )
    assert again.status == 409 and (await error_of(again))["code"] == "conflict"
    bad = await client.post("/api/v1/admin/integrations", json={"name": ""}, headers=bearer(root["access_token"]))
    assert bad.status == 422
    forbidden = await client.post(
        "/api/v1/admin/integrations", json={"name": "x"}, headers=bearer(operator["access_token"])
    )
    assert forbidden.status == 403
    # The secret works for signing.
    [me] = await shoppers(client, 1)

    till = Pos(client, created["key_id"], created["secret"])
    assert (await till.post(visit("v1", me))).status == 201


async def test_signatures_timestamps_and_replays(client):
    till = await pos(client)
    [me] = await shoppers(client, 1)
    raw = json.dumps(visit("v1", me)).encode()

    async def send(headers: dict[str, str], body: bytes = raw):
        return await client.post(EVENTS, data=body, headers=headers)

    async def refused(resp, status: int, code: str) -> None:
        assert resp.status == status, await resp.text()
        assert (await error_of(resp))["code"] == code

    good = till.headers(raw)
    await refused(await send({**good, "X-Signature": "0" * 64}), 401, "invalid_signature")
    await refused(await send(till.headers(raw, secret="sk_not-the-secret")), 401, "invalid_signature")
    await refused(await send({k: v for k, v in good.items() if k != "X-Signature"}), 401, "invalid_signature")
    await refused(await send({k: v for k, v in good.items() if k != "X-Nonce"}), 401, "invalid_signature")
    await refused(await send({**good, "X-Api-Key": "ik_unknown"}), 401, "invalid_api_key")
    await refused(await send({k: v for k, v in good.items() if k != "X-Api-Key"}), 401, "invalid_api_key")
    await refused(await send(till.headers(raw, timestamp=int(time.time()) - 301)), 401, "stale_request")
    await refused(await send(till.headers(raw, timestamp=int(time.time()) + 301)), 401, "stale_request")
    await refused(await send({**good, "X-Timestamp": "yesterday"}), 401, "stale_request")
    # Superscript digits pass str.isdigit() and made int() raise (a 500).
    for stamp in ("\u00b9", "1\u00b2"):
        await refused(await send({**good, "X-Timestamp": stamp}), 401, "stale_request")
    # The body is part of the signature.
    await refused(await send(good, raw.replace(b"v1", b"v9")), 401, "invalid_signature")
    # Unsigned garbage is refused before it is parsed.
    await refused(await send({**good, "X-Signature": "0" * 64}, b"{not json"), 401, "invalid_signature")
    assert await IntegrationEvent.all().count() == 0

    first = await send(good)
    assert first.status == 201
    await refused(await send(good), 409, "replayed_request")  # the same signed request again
    retry = await send(till.headers(raw))  # a retry signs anew: the external id makes it a replay
    assert retry.status == 200 and (await retry.json())["replayed"] is True
    assert await IntegrationEvent.all().count() == 1
    # A disabled integration is refused.
    await Integration.filter(key_id=till.key_id).update(is_active=False)
    await refused(await send(till.headers(raw)), 401, "invalid_api_key")


async def test_a_signed_request_with_bad_json_is_a_400_or_422(client):
    till = await pos(client)
    for body, status in ((b"{not json", 400), (b"[]", 422), (b"{}", 422)):
        resp = await client.post(EVENTS, data=body, headers=till.headers(body))
        assert resp.status == status, await resp.text()
