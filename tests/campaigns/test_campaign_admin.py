"""Themes, overlaps and exclusivity, budget top-ups, and reading the audit log."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from models.campaigns import Campaign
from models.customers import Customer
from models.participations import Participation
from models.stores import Store
from services.campaigns import exclusivity
from tests.campaigns.fixtures import campaign_body, iso, now
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin

BASE = "/api/v1/admin/campaigns"


async def _auth(client, monkeypatch) -> dict[str, dict[str, str]]:
    cheap_password_hashing(monkeypatch)
    roles = {"op": "operator", "rev": "reviewer", "appr": "approver", "root": "superadmin"}
    return {name: bearer((await logged_in_admin(client, role, name))["access_token"]) for name, role in roles.items()}


async def _create(client, auth, **overrides) -> dict:
    resp = await client.post(BASE, json=campaign_body(**overrides), headers=auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_themes(client, monkeypatch):
    auth = await _auth(client, monkeypatch)
    resp = await client.post("/api/v1/admin/themes", json={"name": "Women's Day"}, headers=auth["op"])
    assert resp.status == 201
    theme = await resp.json()
    resp = await client.post("/api/v1/admin/themes", json={"name": "Women's Day"}, headers=auth["op"])
    assert (await error_of(resp))["code"] == "conflict"
    campaign = await _create(client, auth["op"], theme_id=theme["id"])
    assert campaign["theme_id"] == theme["id"]
    resp = await client.post(BASE, json=campaign_body(theme_id=9999), headers=auth["op"])
    assert resp.status == 422
    resp = await client.get(f"{BASE}?theme_id={theme['id']}", headers=auth["rev"])
    assert [c["id"] for c in (await resp.json())["items"]] == [campaign["id"]]


async def test_overlaps_and_exclusivity(client, monkeypatch):
    auth = await _auth(client, monkeypatch)
    s1 = await Store.create(code="S1", name="One", city="Shanghai", latitude=31.2, longitude=121.4)
    s2 = await Store.create(code="S2", name="Two", city="Shanghai", latitude=31.3, longitude=121.5)
    start = now() + timedelta(days=1)
    window = {"starts_at": iso(start), "ends_at": iso(start + timedelta(days=5))}
    a = await _create(client, auth["op"], categories=["drinks"], **window)
    b = await _create(client, auth["op"], categories=["drinks", "food"], store_ids=[s1.id], **window)
    c = await _create(client, auth["op"], categories=["drinks"], starts_at=iso(start + timedelta(days=10)),
                      ends_at=iso(start + timedelta(days=12)))  # fmt: skip
    d = await _create(client, auth["op"], categories=["toys"], **window)
    e = await _create(client, auth["op"], categories=["drinks"], store_ids=[s2.id], **window)
    for campaign in (b, c, d, e):
        resp = await client.post(f"{BASE}/{campaign['id']}/submit", json={}, headers=auth["op"])
        assert resp.status == 200
    resp = await client.get(f"{BASE}/{a['id']}/overlaps", headers=auth["op"])
    found = {o["id"]: o for o in (await resp.json())["items"]}
    # c is later, d sells something else; b and e share time, a store and a category.
    assert set(found) == {b["id"], e["id"]}
    assert found[b["id"]]["shared_store_ids"] == [s1.id] and found[b["id"]]["shared_categories"] == ["drinks"]
    # b and e run in different stores: no overlap between them.
    resp = await client.get(f"{BASE}/{b['id']}/overlaps", headers=auth["op"])
    assert e["id"] not in {o["id"] for o in (await resp.json())["items"]}

    resp = await client.put(f"{BASE}/{a['id']}/exclusive", json={"campaign_ids": [b["id"]]}, headers=auth["op"])
    assert (await resp.json()) == {"campaign_ids": [b["id"]]}
    resp = await client.get(f"{BASE}/{a['id']}/overlaps", headers=auth["op"])
    assert {o["id"]: o["exclusive"] for o in (await resp.json())["items"]} == {b["id"]: True, e["id"]: False}
    # Symmetric: b now excludes a.
    assert await exclusivity.exclusive_ids(b["id"]) == {a["id"]}
    customer = await Customer.create(openid="o_x")
    assert await exclusivity.conflicts_for(customer.id, a["id"]) == []
    await Participation.create(campaign_id=b["id"], customer_id=customer.id)
    assert await exclusivity.conflicts_for(customer.id, a["id"]) == [b["id"]]
    for bad in ([a["id"]], [424242]):
        resp = await client.put(f"{BASE}/{a['id']}/exclusive", json={"campaign_ids": bad}, headers=auth["op"])
        assert resp.status == 422
    resp = await client.put(f"{BASE}/{a['id']}/exclusive", json={"campaign_ids": []}, headers=auth["op"])
    assert await exclusivity.exclusive_ids(a["id"]) == set()


async def test_budget_topups(client, monkeypatch):
    auth = await _auth(client, monkeypatch)
    campaign = await _create(client, auth["op"], budget_limit=50_000)
    path = f"{BASE}/{campaign['id']}/budget-topups"
    resp = await client.post(path, json={"amount": 20_000, "reason": "selling fast"}, headers=auth["op"])
    assert resp.status == 201
    topup = await resp.json()
    assert topup["status"] == "pending"
    # Operators do not decide; approvers do, once.
    resp = await client.post(f"/api/v1/admin/budget-topups/{topup['id']}/approve", json={}, headers=auth["op"])
    assert resp.status == 403
    resps = await asyncio.gather(
        client.post(f"/api/v1/admin/budget-topups/{topup['id']}/approve", json={}, headers=auth["appr"]),
        client.post(f"/api/v1/admin/budget-topups/{topup['id']}/approve", json={}, headers=auth["root"]),
    )
    assert sorted(r.status for r in resps) == [200, 409]
    assert (await Campaign.get(id=campaign["id"])).budget_limit == 70_000
    # Nobody decides their own request.
    resp = await client.post(path, json={"amount": 1}, headers=auth["root"])
    own = await resp.json()
    resp = await client.post(f"/api/v1/admin/budget-topups/{own['id']}/approve", json={}, headers=auth["root"])
    assert (await error_of(resp))["code"] == "self_approval_forbidden"
    resp = await client.post(f"/api/v1/admin/budget-topups/{own['id']}/reject", json={}, headers=auth["appr"])
    assert (await resp.json())["status"] == "rejected"
    assert (await Campaign.get(id=campaign["id"])).budget_limit == 70_000
    resp = await client.post(path, json={"amount": 0}, headers=auth["op"])
    assert resp.status == 422
    uncapped = await _create(client, auth["op"], budget_limit=None)
    resp = await client.post(f"{BASE}/{uncapped['id']}/budget-topups", json={"amount": 5}, headers=auth["op"])
    assert (await error_of(resp))["code"] == "budget_uncapped"
    resp = await client.get(path, headers=auth["rev"])
    assert [t["status"] for t in (await resp.json())["items"]] == ["rejected", "approved"]


async def test_audit_log(client, monkeypatch):
    auth = await _auth(client, monkeypatch)
    campaign = await _create(client, auth["op"])
    await client.patch(f"{BASE}/{campaign['id']}", json={"tags": ["x"]}, headers=auth["op"])
    resp = await client.get(
        f"/api/v1/admin/audit?entity_type=campaign&entity_id={campaign['id']}", headers=auth["appr"]
    )
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert [i["action"] for i in items] == ["campaign.update", "campaign.create"]
    update = items[0]
    assert update["before"]["tags"] == ["coffee", "bakery"] and update["after"]["tags"] == ["x"]
    assert update["actor_kind"] == "admin" and update["request_id"]
    resp = await client.get("/api/v1/admin/audit?action=campaign.create", headers=auth["root"])
    assert len((await resp.json())["items"]) == 1
    resp = await client.get("/api/v1/admin/audit", headers=auth["op"])
    assert resp.status == 403
