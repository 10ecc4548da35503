"""Membership tiers set by customer service or synced by a CRM's profile event: recorded
with their source, audited, a tier_changed automation trigger, and the customer's feed
follows at once."""

from __future__ import annotations

from typing import Any

import pytest

from models.audit import AuditEntry
from models.automation import AutomationRun
from models.customers import Customer, TierChange
from models.vouchers import Voucher
from server.keys import REDIS
from services.stock import CampaignKeys
from tests.customer_service.fixtures import admin_headers, customer_path, ok
from tests.helpers import cheap_password_hashing, error_of
from tests.journey.fixtures import drain_claims, make_campaign, pos, shoppers, visit


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_password_hashing(monkeypatch)


async def _feed_ids(client: Any, who: Any) -> set[int]:
    resp = await client.get("/api/v1/feed?limit=50", headers=who.headers)
    assert resp.status == 200, await resp.text()
    return {item["id"] for item in (await resp.json())["items"]}


def profile(external_id: str, customer_id: int, tier: str, **extra: Any) -> dict[str, Any]:
    body = visit(external_id, type("Who", (), {"id": customer_id})())
    return {**body, "type": "profile", "tier": tier, **extra}


async def test_a_crm_tier_sync_changes_the_customers_feed(client) -> None:
    """The end-to-end walk: a campaign for gold members appears in the customer's feed as
    soon as the CRM's profile event makes them gold, and goes when support sets them back."""
    public = await make_campaign()
    gold = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"}, coupons=1)
    [me] = await shoppers(client, 1)
    assert await _feed_ids(client, me) == {public.id}  # the gold audience set is built now, without me
    [coupon] = await gold.coupons.all()
    grab_path = f"/api/v1/coupons/{coupon.id}/grab"
    refused = await client.post(grab_path, headers=me.headers)  # loads the coupon and its audience, without me
    assert refused.status == 403 and (await error_of(refused))["code"] == "not_eligible"
    crm = await pos(client, "crm")

    event = profile("crm-1", me.id, "gold")
    body = await ok(await crm.post(event), 201)
    assert body["tier"] == {"from_tier": "standard", "to_tier": "gold", "changed": True}
    assert body["type"] == "profile" and body["points"] == 0 and body["progress"] == []
    assert (await Customer.get(id=me.id)).membership_tier == "gold"
    [change] = await TierChange.filter(customer_id=me.id)
    assert (change.source, change.from_tier, change.to_tier) == ("integration", "standard", "gold")
    assert change.admin_id is None
    assert change.integration_id is not None
    assert await _feed_ids(client, me) == {public.id, gold.id}
    # The grab's audience set follows too: the gold coupon can be grabbed at once.
    assert await client.server.app[REDIS].sismember(CampaignKeys(gold.id).audience, str(me.id))
    grabbed = await client.post(grab_path, headers=me.headers)
    assert grabbed.status == 201, await grabbed.text()

    # The same event again is a replay: nothing recorded twice.
    replay = await ok(await crm.post(event), 200)
    assert replay["replayed"] is True and await TierChange.filter(customer_id=me.id).count() == 1

    headers = await admin_headers(client)
    back = await ok(
        await client.put(customer_path(me.id, "/tier"), json={"tier": "standard", "reason": "CRM error"},
                         headers=headers)
    )  # fmt: skip
    assert back["changed"] is True and back["from_tier"] == "gold"
    assert await _feed_ids(client, me) == {public.id}


async def test_an_admin_tier_change_is_recorded_with_its_source_and_audited(client) -> None:
    [me] = await shoppers(client, 1, prefix="o_tier")
    headers = await admin_headers(client)
    path = customer_path(me.id, "/tier")
    body = await ok(await client.put(path, json={"tier": "platinum", "reason": "VIP"}, headers=headers))
    assert (body["from_tier"], body["to_tier"], body["changed"]) == ("standard", "platinum", True)
    [change] = await TierChange.filter(customer_id=me.id)
    assert (change.source, change.admin_id is not None, change.reason) == ("admin", True, "VIP")
    [entry] = await AuditEntry.filter(action="customer.tier", entity_id=me.id)
    assert entry.actor_kind == "admin"
    assert entry.before["membership_tier"] == "standard" and entry.after["membership_tier"] == "platinum"
    assert entry.after["source"] == "admin" and entry.after["reason"] == "VIP"

    # The same tier again records nothing.
    same = await ok(await client.put(path, json={"tier": "platinum", "reason": "again"}, headers=headers))
    assert same["changed"] is False and same["change_id"] is None
    assert await TierChange.filter(customer_id=me.id).count() == 1
    assert await AuditEntry.filter(action="customer.tier").count() == 1

    detail = await ok(await client.get(customer_path(me.id), headers=headers))
    assert detail["profile"]["membership_tier"] == "platinum"
    assert [(t["source"], t["to_tier"]) for t in detail["tier_changes"]] == [("admin", "platinum")]

    for bad in ({"tier": "diamond", "reason": "x"}, {"tier": "gold"}, {"tier": "gold", "reason": ""}):
        resp = await client.put(path, json=bad, headers=headers)
        assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"
    resp = await client.put(customer_path(987_654, "/tier"), json={"tier": "gold", "reason": "x"}, headers=headers)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"


async def test_a_tier_change_triggers_tier_changed_rules(client) -> None:
    campaign = await make_campaign(coupons=1)
    coupon_id = (await campaign.coupons.all())[0].id
    headers = await admin_headers(client)
    rule = await ok(
        await client.post(
            "/api/v1/admin/automation-rules",
            json={"name": "welcome gold", "trigger": {"type": "tier_changed", "tier": "gold"},
                  "action": {"type": "issue_coupon", "coupon_id": coupon_id}},
            headers=headers,
        ),
        201,
    )  # fmt: skip
    silver, gold = await shoppers(client, 2, prefix="o_rule")
    await ok(await client.put(customer_path(silver.id, "/tier"), json={"tier": "silver", "reason": "x"},
                              headers=headers))  # fmt: skip
    crm = await pos(client, "crm")
    await ok(await crm.post(profile("crm-gold", gold.id, "gold")), 201)
    await drain_claims(client)
    runs = await AutomationRun.filter(rule_id=rule["id"])
    assert [(r.customer_id, r.status, r.trigger) for r in runs] == [(gold.id, "done", "tier_changed")]
    assert runs[0].context["to"] == "gold" and runs[0].context["source"] == "integration"
    assert await Voucher.filter(customer_id=gold.id, template_id=coupon_id).count() == 1
    assert not await Voucher.filter(customer_id=silver.id).exists()


async def test_profile_events_are_validated(client) -> None:
    [me] = await shoppers(client, 1, prefix="o_profile")
    crm = await pos(client, "crm")
    cases = [
        {k: v for k, v in profile("p1", me.id, "gold").items() if k != "tier"},
        profile("p2", me.id, "diamond"),
        profile("p3", me.id, "gold", order_ref="o-1"),
        {**visit("p4", me), "tier": "gold"},
    ]
    for body in cases:
        resp = await crm.post(body)
        assert resp.status == 422, (body, await resp.text())
        assert (await error_of(resp))["code"] == "validation_failed"
    unknown = await crm.post(profile("p5", 987_654, "gold"))
    assert unknown.status == 422 and (await error_of(unknown))["code"] == "unknown_customer"
    assert not await TierChange.all().exists()
