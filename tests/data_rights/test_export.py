"""The data export: everything held about a customer as one JSON document, for the
customer and for a superadmin; never a secret; never a half document that looks whole."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from tortoise import Tortoise, fields
from tortoise.models import Model

from services import privacy
from services.privacy import export as export_module
from tests.data_rights.fixtures import EXPORT, PHONE, admin_export, history, person, rows, superadmin
from tests.helpers import error_of


async def test_the_export_holds_every_table_naming_the_customer_and_no_secret(client: TestClient) -> None:
    me = await person(client)
    await history(client, me)
    resp = await client.get(EXPORT, headers=me.headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    assert f'filename="customer-{me.id}.json"' in resp.headers["Content-Disposition"]
    raw = await resp.read()
    document = json.loads(raw)
    assert document["complete"] is True and list(document)[-1] == "complete"
    assert document["customer_id"] == me.id and document["format"] == "wxcampaign.customer-export"
    assert set(document["tables"]) == {holding.table for holding in privacy.HOLDINGS}
    for holding in privacy.HOLDINGS:
        assert rows(document, holding.table), f"{holding.table} is empty in the export"
    [profile] = rows(document, "customers")
    assert profile["openid"] == me.openid and profile["unionid"] == me.unionid
    assert profile["phone_number"] == PHONE and profile["nickname"] == "Erin" and profile["city"] == "Hangzhou"
    assert profile["interest_tags"] == ["coffee", "running"]
    assert {v["id"] for v in rows(document, "vouchers")} == {me.available, me.redeemed}
    assert all(r["customer_id"] == me.id for r in rows(document, "redemptions"))
    assert all(e["customer_id"] == me.id for e in rows(document, "points_entries"))
    assert [r["inviter_id"] for r in rows(document, "referrals")] == [me.id]
    assert any(a["entity_id"] == me.id for a in rows(document, "audit_log"))
    # Secrets are no data about the person: never exported.
    assert b"session_key" not in raw and b"token_hash" not in raw
    assert all("token_hash" not in t for t in rows(document, "refresh_tokens"))

    # A superadmin's export of the same customer is the same document.
    admin = await client.get(admin_export(me.id), headers=await superadmin(client))
    assert admin.status == 200, await admin.text()
    by_admin = await admin.json()
    assert {k: v for k, v in by_admin.items() if k != "generated_at"} == {
        k: v for k, v in document.items() if k != "generated_at"
    }


async def test_tables_are_read_in_batches(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    me = await person(client)
    await history(client, me)
    monkeypatch.setattr(export_module, "BATCH", 1)
    resp = await client.get(EXPORT, headers=me.headers)
    document = await resp.json()
    assert document["complete"] is True
    assert {v["id"] for v in rows(document, "vouchers")} == {me.available, me.redeemed}


async def test_a_failure_midway_never_answers_a_document_that_looks_whole(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = await person(client)
    await history(client, me)
    real = export_module._batches

    async def failing(holding: privacy.Holding, customer_id: int) -> Any:
        if holding.table == "vouchers":
            raise RuntimeError("the database went away")
        async for batch in real(holding, customer_id):
            yield batch

    monkeypatch.setattr(export_module, "_batches", failing)
    resp = await client.get(EXPORT, headers=me.headers)
    assert resp.status == 200  # the answer had started
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_unknown_customer_is_404(client: TestClient) -> None:
    resp = await client.get(admin_export(987_654), headers=await superadmin(client))
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"


async def test_every_model_naming_a_customer_is_in_the_catalog(client: TestClient) -> None:
    registered = list(Tortoise.apps["models"].values())
    assert privacy.unlisted(registered) == []
    assert {h.model for h in privacy.HOLDINGS} <= set(registered)

    # A table added later with a customer column, by foreign key or by name, is caught.
    class Wishlist(Model):
        id = fields.BigIntField(primary_key=True)
        customer: fields.ForeignKeyRelation[Any] = fields.ForeignKeyField("models.Customer", related_name=False)

        class Meta:
            app = "data_rights_test"

    class LoyaltyCard(Model):
        id = fields.BigIntField(primary_key=True)
        holder_customer_id = fields.BigIntField()

        class Meta:
            app = "data_rights_test"

    missing = privacy.unlisted([*registered, Wishlist, LoyaltyCard])
    assert len(missing) == 2 and missing[0].startswith("Wishlist") and "holder_customer_id" in missing[1], missing
