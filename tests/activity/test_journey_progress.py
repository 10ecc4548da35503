"""Progress from events over real HTTP: duplicates, order, refunds, windows, scope,
check-ins, and a reward granted once however many events complete the goal at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from models.campaigns import CampaignStore, CouponTemplate
from models.journey import CheckIn, CustomerBadge, IntegrationEvent, PointsEntry, RewardGrant
from models.participations import Participation
from models.stores import Store
from models.vouchers import Voucher
from services.journey import points
from tests.helpers import error_of
from tests.journey.fixtures import challenge, drain_claims, pos, purchase, refund, shoppers, visit


async def _join(client, campaign_id, shopper) -> None:
    resp = await client.post(f"/api/v1/campaigns/{campaign_id}/join", headers=shopper.headers)
    assert resp.status == 201, await resp.text()


async def _progress(client, campaign_id, shopper) -> dict:
    resp = await client.get(f"/api/v1/campaigns/{campaign_id}/progress", headers=shopper.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_duplicates_out_of_order_and_refunds_give_correct_totals(client):
    spend = await challenge("spend", 100_000)
    count = await challenge("purchases", 10)
    visits = await challenge("visits", 10)
    [me] = await shoppers(client, 1)
    for c in (spend, count, visits):
        await _join(client, c.id, me)
    till = await pos(client)
    now = datetime.now(UTC)
    # Out of order: the later purchase first.
    p2 = purchase("p2", me, 4_000, occurred_at=(now - timedelta(seconds=5)).isoformat())
    p1 = purchase("p1", me, 3_000, occurred_at=(now - timedelta(seconds=30)).isoformat())
    for body in (p2, p1, p2, p1):  # each twice
        resp = await till.post(body)
        assert resp.status in (200, 201), await resp.text()
    replay = await till.post(p1)
    assert replay.status == 200 and (await replay.json())["replayed"] is True
    v1 = visit("v1", me)
    for body in (v1, visit("v2", me), v1):
        assert (await till.post(body)).status in (200, 201)
    r2 = refund("r2", me, "p2")
    resp = await till.post(r2)
    assert resp.status == 201
    assert (await resp.json())["points"] == -40
    assert (await till.post(r2)).status == 200  # the refund twice
    again = await till.post(refund("r2b", me, "p2"))  # another refund of the same purchase
    assert again.status == 201 and (await again.json())["points"] == 0

    assert (await _progress(client, spend.id, me))["value"] == 3_000
    assert (await _progress(client, count.id, me))["value"] == 1
    assert (await _progress(client, visits.id, me))["value"] == 2
    assert await points.balance_of(me.id) == 30  # 30 + 40 earned, 40 taken back
    history = (await _progress(client, spend.id, me))["history"]
    assert [(h["source"], h["delta"]) for h in history] == [
        ("purchase", 4_000),
        ("purchase", 3_000),
        ("refund", -4_000),
    ]
    assert history[-1]["value_after"] == 3_000


async def test_a_refund_before_its_purchase_waits_for_it(client):
    spend = await challenge("spend", 100_000)
    [me] = await shoppers(client, 1)
    await _join(client, spend.id, me)
    till = await pos(client)
    resp = await till.post(refund("r1", me, "p1"))
    assert resp.status == 201 and (await resp.json())["status"] == "pending"
    resp = await till.post(purchase("p1", me, 5_000))
    assert resp.status == 201
    body = await resp.json()
    assert body["status"] == "refunded" and body["points"] == 0 and body["progress"] == []
    assert (await _progress(client, spend.id, me))["value"] == 0
    assert await points.balance_of(me.id) == 0
    assert {e.status for e in await IntegrationEvent.all()} == {"applied", "refunded"}


async def test_events_completing_the_goal_at_once_grant_the_reward_once(client):
    campaign = await challenge("purchases", 2, reward_points=100, reward_badge="regular")
    await CouponTemplate.create(
        campaign=campaign, kind="fixed", title={"en": "Reward"}, face_value=500, total_stock=10, per_user_limit=5,
        validity_kind="relative", valid_days=7,
    )  # fmt: skip
    [me] = await shoppers(client, 1)
    await _join(client, campaign.id, me)
    till = await pos(client)
    assert (await till.post(purchase("first", me, 100))).status == 201
    # Ten purchases at once: each would complete the goal.
    resps = await asyncio.gather(*(till.post(purchase(f"p{i}", me, 100)) for i in range(10)))
    assert [r.status for r in resps] == [201] * 10
    completed = [p for r in resps for p in (await r.json())["progress"] if p["completed"]]
    assert len(completed) == 1
    participation = await Participation.get(campaign_id=campaign.id, customer_id=me.id)
    assert participation.status == "completed"
    assert await RewardGrant.filter(participation_id=participation.id).count() == 1
    assert await PointsEntry.filter(customer_id=me.id, reason="campaign_reward").count() == 1
    assert await CustomerBadge.filter(customer_id=me.id).count() == 1
    await drain_claims(client)
    assert await Voucher.filter(customer_id=me.id, campaign_id=campaign.id).count() == 1
    view = await _progress(client, campaign.id, me)
    assert view["status"] == "completed" and view["percent"] == 100 and view["remaining"] == 0


async def test_two_customers_events_run_in_parallel_and_complete_separately(client):
    campaign = await challenge("visits", 1, reward_points=10)
    people = await shoppers(client, 10)
    for p in people:
        await _join(client, campaign.id, p)
    till = await pos(client)
    resps = await asyncio.gather(*(till.post(visit(f"v{p.id}", p)) for p in people))
    assert [r.status for r in resps] == [201] * 10
    assert await Participation.filter(campaign_id=campaign.id, status="completed").count() == 10
    assert await PointsEntry.filter(reason="campaign_reward").count() == 10


async def test_only_activity_in_the_window_and_scope_counts(client):
    store_a = await Store.create(code="A", name="A", city="SH", latitude=31.2, longitude=121.4)
    store_b = await Store.create(code="B", name="B", city="SH", latitude=31.3, longitude=121.5)
    campaign = await challenge("spend", 100_000, all_stores=False, categories=["coffee"], goal_window_days=1)
    await CampaignStore.create(campaign=campaign, store=store_a)
    [me] = await shoppers(client, 1)
    await _join(client, campaign.id, me)
    till = await pos(client)
    now = datetime.now(UTC)
    bodies = [
        purchase("before-start", me, 1_000, occurred_at=(now - timedelta(hours=2)).isoformat()),
        purchase("other-store", me, 1_000, store_id=store_b.id),
        purchase("other-category", me, 1_000, categories=["tea"]),
        purchase(
            "a-second-later", me, 1_000, occurred_at=(now + timedelta(seconds=1)).isoformat(), store_id=store_a.id
        ),
        purchase("counts", me, 2_500, store_id=store_a.id, categories=["coffee", "cake"]),
        purchase("counts-too", me, 500),  # no store, no categories: within scope
    ]
    for body in bodies:
        assert (await till.post(body)).status == 201
    view = await _progress(client, campaign.id, me)
    assert view["value"] == 3_000 + 1_000  # "a-second-later" is still inside the one-day window
    assert view["target"] == 100_000 and view["remaining"] == 96_000 and view["percent"] == 4
    deadline = datetime.fromisoformat(view["deadline"])
    assert timedelta(hours=23) < deadline - now <= timedelta(days=1)


async def test_checkins_once_a_day_with_streaks_feed_streak_goals(client):
    streak3 = await challenge("checkin_streak", 3, reward_points=5, starts_at=datetime.now(UTC) - timedelta(days=3))
    [me, fresh] = await shoppers(client, 2)
    await _join(client, streak3.id, me)
    await _join(client, streak3.id, fresh)
    first = await client.post("/api/v1/checkins", headers=fresh.headers)
    assert first.status == 201
    body = await first.json()
    assert body["streak"] == 1 and body["progress"][0]["value"] == 1
    again = await client.post("/api/v1/checkins", headers=fresh.headers)
    assert again.status == 200 and (await again.json())["created"] is False
    # Two days checked in already; joined the day before yesterday, so they all count.
    today = datetime.now(UTC).date()
    await CheckIn.create(customer_id=me.id, day=today - timedelta(days=2), streak=1)
    await CheckIn.create(customer_id=me.id, day=today - timedelta(days=1), streak=2)
    await Participation.filter(customer_id=me.id).update(joined_at=datetime.now(UTC) - timedelta(days=2))
    resp = await client.post("/api/v1/checkins", headers=me.headers)
    assert resp.status == 201
    body = await resp.json()
    assert body["streak"] == 3 and body["progress"][0]["value"] == 3 and body["progress"][0]["completed"] is True
    assert await points.balance_of(me.id) == 5
    # Only days since joining count: a long streak before joining does not.
    late = await challenge("checkin_streak", 3)
    [other] = await shoppers(client, 1, prefix="o_late")
    await CheckIn.create(customer_id=other.id, day=today - timedelta(days=1), streak=7)
    await _join(client, late.id, other)
    body = await (await client.post("/api/v1/checkins", headers=other.headers)).json()
    assert body["streak"] == 8 and body["progress"][0]["value"] == 1


async def test_my_campaigns_lists_progress(client):
    a = await challenge("visits", 4)
    b = await challenge("visits", 1)
    [me] = await shoppers(client, 1)
    await _join(client, a.id, me)
    await _join(client, b.id, me)
    till = await pos(client)
    assert (await till.post(visit("v", me))).status == 201
    resp = await client.get("/api/v1/me/campaigns", headers=me.headers)
    items = (await resp.json())["items"]
    assert [i["campaign_id"] for i in items] == [b.id, a.id]
    assert items[0]["progress"]["status"] == "completed" and items[1]["progress"]["percent"] == 25
    resp = await client.get("/api/v1/me/campaigns?status=joined&limit=1", headers=me.headers)
    assert [i["campaign_id"] for i in (await resp.json())["items"]] == [a.id]
    resp = await client.get("/api/v1/me/campaigns?status=nope", headers=me.headers)
    assert resp.status == 422
    resp = await client.get(f"/api/v1/campaigns/{a.id + 100}/progress", headers=me.headers)
    assert resp.status == 404


async def test_bad_events_are_refused_with_documented_codes(client):
    campaign = await challenge("spend", 1000)
    [me] = await shoppers(client, 1)
    await _join(client, campaign.id, me)
    till = await pos(client)

    async def refused(body, status, code):
        resp = await till.post(body)
        assert resp.status == status, await resp.text()
        assert (await error_of(resp))["code"] == code

    await refused({**purchase("x", me, 100), "customer_id": 10**12}, 422, "unknown_customer")
    await refused({**purchase("x", me, 100), "customer_id": None, "openid": "nobody"}, 422, "unknown_customer")
    await refused(purchase("x", me, 100, store_id=10**12), 422, "unknown_store")
    await refused({**purchase("x", me, 100), "amount": -1}, 422, "validation_failed")
    await refused({**purchase("x", me, 100), "order_ref": None}, 422, "validation_failed")
    await refused({**visit("x", me), "openid": me.openid}, 422, "validation_failed")  # both ids
    await refused({**visit("x", me), "amount": 5}, 422, "validation_failed")
    await refused({**refund("x", me, "p"), "refund_of": None}, 422, "validation_failed")
    await refused({**visit("x", me), "type": "teleport"}, 422, "validation_failed")
    await refused({**visit("x", me), "extra": 1}, 422, "validation_failed")
    await refused({**visit("x y", me)}, 422, "validation_failed")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await refused(visit("x", me, occurred_at=future), 422, "validation_failed")
    await refused(visit("x", me, occurred_at="2024-01-01T00:00:00"), 422, "validation_failed")  # no offset
    assert (await till.post(purchase("same", me, 100))).status == 201
    await refused(purchase("same", me, 200), 409, "event_conflict")
    # By openid works.
    resp = await till.post({**visit("by-openid", me), "customer_id": None, "openid": me.openid})
    assert resp.status == 201
    # A refund of another customer's purchase.
    [other] = await shoppers(client, 1, prefix="o_other")
    await refused(refund("r", other, "same"), 422, "validation_failed")


async def test_the_points_balance_never_goes_negative_under_concurrency(client):
    [me] = await shoppers(client, 1)
    await points.add(me.id, 100, "test", "grant-100")

    async def spend(i: int) -> bool:
        try:
            await points.add(me.id, -10, "test", f"spend-{i}")
            return True
        except points.InsufficientPoints:
            return False

    results = await asyncio.gather(*(spend(i) for i in range(30)))
    assert results.count(True) == 10
    assert await points.balance_of(me.id) == 0
    entries = await PointsEntry.filter(customer_id=me.id).order_by("id")
    assert sum(e.delta for e in entries) == 0 and min(e.balance_after for e in entries) == 0
    assert await points.add(me.id, 100, "test", "grant-100") is None  # the same ref: no-op


async def test_purchases_and_their_refunds_posted_at_the_same_moment_net_to_zero(client):
    spend = await challenge("spend", 10**9)
    [me] = await shoppers(client, 1)
    await _join(client, spend.id, me)
    till = await pos(client)
    bodies = []
    for i in range(15):
        bodies += [purchase(f"p{i}", me, 1_000 + i), refund(f"r{i}", me, f"p{i}")]
    resps = await asyncio.gather(*(till.post(b) for b in bodies))
    assert [r.status for r in resps] == [201] * 30
    assert (await _progress(client, spend.id, me))["value"] == 0
    assert await points.balance_of(me.id) == 0
    assert await IntegrationEvent.filter(status="pending").count() == 0
