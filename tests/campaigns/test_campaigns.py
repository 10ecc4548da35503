"""The campaign builder: create, validate, edit, list, delete, with the audit log."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from models.audit import AuditEntry
from models.campaigns import Campaign, CouponTemplate
from models.stores import Store
from tests.campaigns.fixtures import campaign_body, coupon_body, iso, now
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin

BASE = "/api/v1/admin/campaigns"


async def _operator(client, monkeypatch, name="op"):
    cheap_password_hashing(monkeypatch)
    return bearer((await logged_in_admin(client, "operator", name))["access_token"])


async def test_create_and_read_back(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    store = await Store.create(code="S1", name="One", city="Shanghai", latitude=31.2, longitude=121.4)
    body = campaign_body(store_ids=[store.id])
    body["coupons"].append(
        coupon_body(kind="percent", percent_off=20, face_value=5000, store_ids=[store.id], title={"en": "20% off"})
    )
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["status"] == "draft" and created["version"] == 1
    assert created["store_ids"] == [store.id]
    assert [c["kind"] for c in created["coupons"]] == ["fixed", "percent"]
    assert created["content"]["en"]["title"] == "Double 12 deals"
    resp = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert (await resp.json()) == created
    entry = await AuditEntry.get(action="campaign.create", entity_id=created["id"])
    assert entry.actor_kind == "admin" and entry.after["status"] == "draft"


async def _refused(client, auth, body, status, code, field=None):
    before = await Campaign.all().count()
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status == status, await resp.text()
    error = await error_of(resp)
    assert error["code"] == code, error
    if field is not None:
        named = [e["field"] for e in error["details"].get("errors", [])] + [error["details"].get("field")]
        assert any(field in (n or "") for n in named), error
    assert await Campaign.all().count() == before
    assert await CouponTemplate.all().count() == 0
    return error


async def test_bad_campaigns_are_refused_with_their_codes(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    start = now() + timedelta(days=1)
    await _refused(
        client, auth, campaign_body(starts_at=iso(start), ends_at=iso(start - timedelta(hours=1))), 422,
        "invalid_schedule", "ends_at",
    )  # fmt: skip
    await _refused(
        client, auth, campaign_body(visible_from=iso(start + timedelta(hours=1))), 422, "invalid_schedule",
        "visible_from",
    )  # fmt: skip
    await _refused(client, auth, campaign_body(coupons=[coupon_body(total_stock=-5)]), 422, "validation_failed",
                   "coupons.0.total_stock")  # fmt: skip
    await _refused(client, auth, campaign_body(coupons=[coupon_body(face_value=-1)]), 422, "validation_failed",
                   "face_value")  # fmt: skip
    await _refused(
        client, auth, campaign_body(coupons=[coupon_body(kind="percent", percent_off=120)]), 422,
        "validation_failed", "percent_off",
    )  # fmt: skip
    error = await _refused(client, auth, campaign_body(budget_limit=500), 422, "budget_too_small", "budget_limit")
    assert error["details"]["smallest_useful"] == 1000
    error = await _refused(client, auth, campaign_body(store_ids=[424242]), 422, "unknown_store")
    assert error["details"]["store_ids"] == [424242]
    await _refused(client, auth, campaign_body(type="challenge"), 422, "validation_failed")
    await _refused(client, auth, campaign_body(type="event"), 422, "validation_failed")
    await _refused(client, auth, campaign_body(visibility="targeted"), 422, "validation_failed")
    await _refused(
        client, auth, campaign_body(coupons=[coupon_body(kind="threshold", face_value=1000, min_spend=500)]), 422,
        "validation_failed",
    )  # fmt: skip
    await _refused(client, auth, campaign_body(channels=[]), 422, "validation_failed", "channels")
    await _refused(client, auth, campaign_body(starts_at="2026-12-01T00:00:00"), 422, "validation_failed", "starts_at")


async def test_roles(client, monkeypatch):
    cheap_password_hashing(monkeypatch)
    reviewer = bearer((await logged_in_admin(client, "reviewer"))["access_token"])
    resp = await client.post(BASE, json=campaign_body(), headers=reviewer)
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "forbidden"
    resp = await client.get(BASE, headers=reviewer)
    assert resp.status == 200


async def _create(client, auth, **overrides):
    resp = await client.post(BASE, json=campaign_body(**overrides), headers=auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_patch_changes_only_what_is_sent_and_checks_the_version(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    created = await _create(client, auth)
    resp = await client.patch(f"{BASE}/{created['id']}", json={"tags": ["tea"], "version": 1}, headers=auth)
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["tags"] == ["tea"] and patched["version"] == 2
    assert patched["coupons"] == created["coupons"]  # ids kept, nothing else changed
    # A stale version is refused and changes nothing.
    resp = await client.patch(f"{BASE}/{created['id']}", json={"tags": ["x"], "version": 1}, headers=auth)
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "campaign_state_changed"
    assert (await Campaign.get(id=created["id"])).tags == ["tea"]
    # Cross-field rules are checked on the merged result.
    resp = await client.patch(f"{BASE}/{created['id']}", json={"budget_limit": 10}, headers=auth)
    assert (await error_of(resp))["code"] == "budget_too_small"
    audit = await AuditEntry.filter(action="campaign.update", entity_id=created["id"])
    assert len(audit) == 1
    assert audit[0].before["tags"] == ["coffee", "bakery"] and audit[0].after["tags"] == ["tea"]


async def test_coupons_are_kept_updated_added_and_removed_by_id(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    created = await _create(client, auth, coupons=[coupon_body(), coupon_body(face_value=2000)])
    first, second = created["coupons"]
    updated = {**coupon_body(face_value=1500), "id": first["id"]}
    resp = await client.patch(
        f"{BASE}/{created['id']}", json={"coupons": [updated, coupon_body(face_value=300)]}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    coupons = (await resp.json())["coupons"]
    assert coupons[0]["id"] == first["id"] and coupons[0]["face_value"] == 1500
    assert second["id"] not in [c["id"] for c in coupons]
    assert len(coupons) == 2
    resp = await client.patch(
        f"{BASE}/{created['id']}", json={"coupons": [{**coupon_body(), "id": 999999}]}, headers=auth
    )
    assert resp.status == 422


async def test_concurrent_edits_one_wins(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    created = await _create(client, auth)
    resps = await asyncio.gather(
        *(
            client.patch(f"{BASE}/{created['id']}", json={"tags": [f"t{i}"], "version": 1}, headers=auth)
            for i in range(8)
        )
    )
    statuses = sorted(r.status for r in resps)
    assert statuses.count(200) == 1 and statuses.count(409) == 7
    assert (await Campaign.get(id=created["id"])).version == 2


async def test_list_filters_and_pages(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    store = await Store.create(code="S9", name="Nine", city="Beijing", latitude=39.9, longitude=116.4)
    a = await _create(client, auth, tags=["coffee"], channels=["miniprogram"])
    b = await _create(client, auth, tags=["tea"], channels=["pos"], store_ids=[store.id])
    c = await _create(client, auth, type="flash_sale", tags=["tea"], channels=["miniprogram", "h5"])

    async def ids(query: str) -> list[int]:
        resp = await client.get(f"{BASE}?{query}", headers=auth)
        assert resp.status == 200, await resp.text()
        return [item["id"] for item in (await resp.json())["items"]]

    assert await ids("tag=tea") == [c["id"], b["id"]]
    assert await ids("channel=miniprogram") == [c["id"], a["id"]]
    assert await ids("type=flash_sale") == [c["id"]]
    assert await ids(f"store_id={store.id}") == [c["id"], b["id"], a["id"]]  # all-store campaigns included
    far = iso(now() + timedelta(days=60)).replace("+", "%2B")
    assert await ids(f"active_from={far}") == []
    resp = await client.get(f"{BASE}?limit=2", headers=auth)
    page = await resp.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    resp = await client.get(f"{BASE}?limit=2&cursor={page['next_cursor']}", headers=auth)
    assert [i["id"] for i in (await resp.json())["items"]] == [a["id"]]


async def test_delete_only_in_the_builder(client, monkeypatch):
    auth = await _operator(client, monkeypatch)
    created = await _create(client, auth)
    resp = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status == 204
    assert not await Campaign.filter(id=created["id"]).exists()
    resp = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status == 404
