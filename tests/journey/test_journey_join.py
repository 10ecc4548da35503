"""Joining campaigns over real HTTP: idempotency, refusals, the participant cap under
real concurrency, grants on join."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from models.campaigns import ExclusivityLink
from models.journey import CustomerBadge, PointsEntry, RewardGrant
from models.participations import Participation
from models.vouchers import Voucher
from server.keys import JOURNEY, REDIS
from services.journey import SeatKeys
from tests.helpers import error_of
from tests.journey.fixtures import drain_claims, make_campaign, shoppers


def _join(campaign_id: int) -> str:
    return f"/api/v1/campaigns/{campaign_id}/join"


@pytest.mark.both_redis
async def test_200_concurrent_joins_to_a_campaign_capped_at_50(client):
    campaign = await make_campaign(type="event", participant_cap=50)
    people = await shoppers(client, 200)
    resps = await asyncio.gather(*(client.post(_join(campaign.id), headers=p.headers) for p in people))
    statuses = sorted(r.status for r in resps)
    assert statuses.count(201) == 50 and statuses.count(409) == 150
    assert {(await error_of(r))["code"] for r in resps if r.status == 409} == {"campaign_full"}
    assert await Participation.filter(campaign_id=campaign.id).count() == 50
    assert await client.server.app[REDIS].scard(SeatKeys(campaign.id).members) == 50


async def test_the_same_customer_joining_10_times_at_once_gets_one_participation(client):
    campaign = await make_campaign(type="event", participant_cap=5)
    [me] = await shoppers(client, 1)
    resps = await asyncio.gather(*(client.post(_join(campaign.id), headers=me.headers) for _ in range(10)))
    assert sorted(r.status for r in resps) == [200] * 9 + [201]
    bodies = [await r.json() for r in resps]
    assert len({b["participation"]["participation_id"] for b in bodies}) == 1
    assert sorted(b["created"] for b in bodies) == [False] * 9 + [True]
    assert await Participation.filter(campaign_id=campaign.id).count() == 1
    assert await client.server.app[REDIS].scard(SeatKeys(campaign.id).members) == 1


async def test_uncapped_joins_are_idempotent_too(client):
    campaign = await make_campaign(type="event")
    [me] = await shoppers(client, 1)
    resps = await asyncio.gather(*(client.post(_join(campaign.id), headers=me.headers) for _ in range(10)))
    assert sorted(r.status for r in resps) == [200] * 9 + [201]
    assert await Participation.filter(campaign_id=campaign.id).count() == 1


async def test_the_seat_set_is_rebuilt_from_the_database_after_a_redis_loss(client):
    campaign = await make_campaign(type="event", participant_cap=4)
    people = await shoppers(client, 6)
    for p in people[:3]:
        assert (await client.post(_join(campaign.id), headers=p.headers)).status == 201
    redis = client.server.app[REDIS]
    keys = SeatKeys(campaign.id)
    await redis.delete(keys.members, keys.loaded)  # Redis lost the set
    assert (await client.post(_join(campaign.id), headers=people[3].headers)).status == 201
    resp = await client.post(_join(campaign.id), headers=people[4].headers)
    assert resp.status == 409 and (await error_of(resp))["code"] == "campaign_full"
    assert await redis.scard(keys.members) == 4
    # An explicit rebuild counts the database.
    assert await client.server.app[JOURNEY].rebuild_seats(campaign.id) == 4


async def test_refusals_have_their_own_codes(client):
    now = datetime.now(UTC)
    [me] = await shoppers(client, 1)
    paused = await make_campaign(status="paused")
    teaser = await make_campaign(
        status="scheduled", visible_from=now - timedelta(hours=1), starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=2),
    )  # fmt: skip
    draft = await make_campaign(status="draft")
    ended = await make_campaign(starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    targeted = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    pos_only = await make_campaign(channels=["pos"])
    other = await make_campaign()
    exclusive = await make_campaign()
    await ExclusivityLink.create(campaign_low_id=other.id, campaign_high_id=exclusive.id, created_by=1)

    async def refused(campaign_id: int, status: int, code: str) -> dict:
        resp = await client.post(_join(campaign_id), headers=me.headers)
        assert resp.status == status, await resp.text()
        error = await error_of(resp)
        assert error["code"] == code
        return error["details"]

    assert (await refused(paused.id, 409, "campaign_not_active"))["status"] == "paused"
    details = await refused(teaser.id, 409, "campaign_not_active")
    assert details["phase"] == "teaser" and "starts_at" in details
    assert (await refused(ended.id, 409, "campaign_not_active"))["phase"] == "ended"
    await refused(draft.id, 404, "not_found")
    await refused(999_999, 404, "not_found")
    resp = await client.post("/api/v1/campaigns/abc/join", headers=me.headers)
    assert resp.status == 404
    assert (await refused(targeted.id, 403, "not_eligible"))["reason"] == "audience"
    assert (await refused(pos_only.id, 403, "not_eligible"))["reason"] == "channel"
    assert (await client.post(_join(other.id), headers=me.headers)).status == 201
    assert (await refused(exclusive.id, 409, "exclusive_conflict"))["campaign_ids"] == [other.id]
    # No token: 401.
    assert (await client.post(_join(other.id))).status == 401


async def test_targeted_campaign_admits_its_audience(client):
    campaign = await make_campaign(visibility="targeted", audience_rule={"tier": "gold"})
    [gold] = await shoppers(client, 1, prefix="o_gold", membership_tier="gold")
    assert (await client.post(_join(campaign.id), headers=gold.headers)).status == 201


@pytest.mark.both_redis
async def test_an_offer_grants_its_welcome_coupon_points_and_badge_on_join_once(client):
    campaign = await make_campaign(coupons=1, reward_points=50, reward_badge="early-bird")
    [me] = await shoppers(client, 1)
    resps = await asyncio.gather(*(client.post(_join(campaign.id), headers=me.headers) for _ in range(5)))
    assert sorted(r.status for r in resps) == [200] * 4 + [201]
    await drain_claims(client)
    assert await Voucher.filter(customer_id=me.id, campaign_id=campaign.id).count() == 1
    assert await RewardGrant.filter(customer_id=me.id, status="issued").count() == 1
    assert await PointsEntry.filter(customer_id=me.id).count() == 1
    assert await CustomerBadge.filter(customer_id=me.id).count() == 1
    points = await (await client.get("/api/v1/me/points", headers=me.headers)).json()
    assert points["balance"] == 50 and points["items"][0]["reason"] == "campaign_reward"
    badges = await (await client.get("/api/v1/me/badges", headers=me.headers)).json()
    assert [b["badge"] for b in badges["items"]] == ["early-bird"]
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert [v["campaign_id"] for v in wallet["items"]] == [campaign.id]


async def test_a_reward_coupon_respects_stock_and_the_per_user_limit(client):
    campaign = await make_campaign(coupons=1, coupon={"total_stock": 1})
    a, b = await shoppers(client, 2)
    assert (await client.post(_join(campaign.id), headers=a.headers)).status == 201
    assert (await client.post(_join(campaign.id), headers=b.headers)).status == 201
    grants = {g.customer_id: g for g in await RewardGrant.filter(campaign_id=campaign.id)}
    assert grants[a.id].status == "issued"
    assert grants[b.id].status == "refused" and grants[b.id].refusal == "sold_out"
    await drain_claims(client)
    assert await Voucher.filter(campaign_id=campaign.id).count() == 1


async def test_a_challenges_reward_coupons_cannot_be_grabbed(client):
    from models.campaigns import CouponTemplate

    campaign = await make_campaign(type="challenge", goal_metric="visits", goal_target=3, coupons=1)
    [me] = await shoppers(client, 1)
    template = await CouponTemplate.get(campaign_id=campaign.id)
    resp = await client.post(f"/api/v1/coupons/{template.id}/grab", headers=me.headers)
    assert resp.status == 403
    error = await error_of(resp)
    assert error["code"] == "not_eligible" and error["details"]["reason"] == "reward_only"


async def test_a_grant_left_pending_by_a_crash_is_issued_later_once(client, monkeypatch):
    from services.journey import RewardIssuer

    campaign = await make_campaign(coupons=1)
    [me] = await shoppers(client, 1)
    real = RewardIssuer.issue_pending

    async def crashed(self, *args, **kwargs):  # the process died right after the commit
        return 0

    monkeypatch.setattr(RewardIssuer, "issue_pending", crashed)
    assert (await client.post(_join(campaign.id), headers=me.headers)).status == 201
    assert await RewardGrant.filter(status="pending").count() == 1
    monkeypatch.setattr(RewardIssuer, "issue_pending", real)
    issuer = client.server.app[JOURNEY].rewards
    assert await issuer.issue_pending(older_than=60) == 0  # too fresh: a request may still be issuing it
    results = await asyncio.gather(*(issuer.issue_pending(older_than=0) for _ in range(5)))
    assert sum(results) == 1
    await drain_claims(client)
    assert await Voucher.filter(customer_id=me.id, campaign_id=campaign.id).count() == 1
