"""A refund that takes a completed challenge back below its target: the campaign's
``refund_policy`` decides whether the reward is clawed back (the default: points, and
the reward voucher while unused) or kept; either way the participation says so."""

from __future__ import annotations

import json

from models.audit import AuditEntry
from models.campaigns import Campaign
from models.journey import RewardGrant
from models.participations import Participation
from models.vouchers import Voucher
from services.journey import points
from tests.campaigns.fixtures import campaign_body
from tests.helpers import bearer, cheap_password_hashing, logged_in_admin
from tests.journey.fixtures import challenge, drain_claims, pos, purchase, refund, shoppers


async def _complete_then_refund(client, policy: str | None) -> tuple[Campaign, int, dict]:
    fields = {} if policy is None else {"refund_policy": policy}
    campaign = await challenge("spend", 5_000, reward_points=100, coupons=1, **fields)
    [me] = await shoppers(client, 1)
    resp = await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)
    assert resp.status == 201, await resp.text()
    till = await pos(client)
    assert (await till.post(purchase("p1", me, 6_000))).status == 201
    await drain_claims(client)
    assert (await Participation.get(campaign_id=campaign.id)).status == "completed"
    assert await Voucher.filter(customer_id=me.id, campaign_id=campaign.id, status="available").count() == 1
    assert await points.balance_of(me.id) == 60 + 100
    resp = await till.post(refund("r1", me, "p1"))
    assert resp.status == 201, await resp.text()
    progress = await client.get(f"/api/v1/campaigns/{campaign.id}/progress", headers=me.headers)
    return campaign, me.id, await progress.json()


async def test_claw_back_is_the_default(client):
    campaign, me, progress = await _complete_then_refund(client, None)
    assert progress["status"] == "joined" and progress["value"] == 0 and progress["completed_at"] is None
    assert await points.balance_of(me) == 0  # the purchase's 60 and the reward's 100
    [voucher] = await Voucher.filter(customer_id=me, campaign_id=campaign.id)
    assert voucher.status == "void"
    assert (await RewardGrant.get(customer_id=me)).status == "issued"
    [entry] = await AuditEntry.filter(action="reward.claw_back")
    assert entry.entity_type == "participation"
    assert entry.after["points_taken"] == 100 and entry.after["vouchers_voided"] == [voucher.id]


async def test_keep_keeps_the_reward(client):
    campaign, me, progress = await _complete_then_refund(client, "keep")
    assert progress["status"] == "completed" and progress["value"] == 0
    assert await points.balance_of(me) == 100
    assert await Voucher.filter(customer_id=me, campaign_id=campaign.id, status="available").count() == 1
    assert await AuditEntry.filter(action="reward.claw_back").count() == 0


async def test_a_used_reward_voucher_is_not_clawed_back(client):
    campaign = await challenge("spend", 5_000, coupons=1)
    [me] = await shoppers(client, 1)
    assert (await client.post(f"/api/v1/campaigns/{campaign.id}/join", headers=me.headers)).status == 201
    till = await pos(client)
    assert (await till.post(purchase("p1", me, 6_000))).status == 201
    await drain_claims(client)
    await Voucher.filter(customer_id=me.id).update(status="used")
    assert (await till.post(refund("r1", me, "p1"))).status == 201
    assert (await Voucher.get(customer_id=me.id)).status == "used"
    assert (await Participation.get(campaign_id=campaign.id)).status == "joined"


async def test_the_admin_api_takes_and_shows_refund_policy(client, monkeypatch):
    cheap_password_hashing(monkeypatch)
    auth = bearer((await logged_in_admin(client, "operator"))["access_token"])
    resp = await client.post("/api/v1/admin/campaigns", json=campaign_body(), headers=auth)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["refund_policy"] == "claw_back"
    resp = await client.post("/api/v1/admin/campaigns", json=campaign_body(refund_policy="keep"), headers=auth)
    assert resp.status == 201 and (await resp.json())["refund_policy"] == "keep"
    resp = await client.post("/api/v1/admin/campaigns", json=campaign_body(refund_policy="maybe"), headers=auth)
    assert resp.status == 422
    doc = await (await client.get("/api/openapi.json")).json()
    assert "refund_policy" in json.dumps(doc)
