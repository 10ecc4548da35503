"""A bargain's voucher worth the cut (``bargain.reward: cut_voucher``) and a red packet
claimed as a voucher (``red_packet.claim_as: voucher``): one voucher of the campaign's
coupon with its own face value, through the grant script (coupon stock, campaign budget,
claims stream), exactly once under concurrent claims, never over the budget; and the
owner's ``bargain_result`` message when a bargain or packet finishes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models.bargains import Bargain
from models.campaigns import Campaign, CouponTemplate
from models.journey import RewardGrant
from models.notifications import Notification
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.forms import BargainWorker
from services.stock import CampaignKeys, ClaimsWorker
from tests.helpers import error_of
from tests.stock.fixtures import customers

pytestmark = pytest.mark.both_redis


async def _campaign(client: TestClient, kind: str, budget: int | None, **block: Any) -> Campaign:
    """A running bargain or red packet paying a voucher, with its single coupon (face value
    999: the voucher's own value replaces it)."""
    now = datetime.now(UTC)
    spec: dict[str, Any]
    if kind == "bargain":
        spec = {"bargain": {"start_price": 3_000, "floor_price": 1_000, "cut_min": 100, "cut_max": 500,
                            "helpers_needed": 2, "help_limit": 1, "hours": 24, "reward": "cut_voucher",
                            **block}}  # fmt: skip
    else:
        spec = {"red_packet": {"initial_value": 100, "cap": 1_100, "min_increment": 10, "helpers_needed": 20,
                               "help_limit": 1, "hours": 24, "claim_as": "voucher", **block}}  # fmt: skip
    row = await Campaign.create(
        type=kind, status="active", content={"zh-CN": {"title": "砍价券"}}, channels=["miniprogram"],
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), created_by=1, budget_limit=budget,
        reward_points=5 if kind == "bargain" else 0, **spec,
    )  # fmt: skip
    await CouponTemplate.create(
        campaign=row, kind="fixed", title={"zh-CN": "立减券"}, face_value=999, total_stock=100, per_user_limit=1,
        validity_kind="relative", valid_days=7,
    )  # fmt: skip
    await client.server.app[STOCK].load_campaign(row.id)
    return row


async def _finished(client: TestClient, campaign: Campaign, owner: dict[str, str], helpers: list[dict[str, str]]
                    ) -> int:  # fmt: skip
    resp = await client.post("/api/v1/bargains", json={"campaign_id": campaign.id}, headers=owner)
    assert resp.status == 201, await resp.text()
    bargain_id: int = (await resp.json())["bargain"]["id"]
    helps = await asyncio.gather(*(client.post(f"/api/v1/bargains/{bargain_id}/help", headers=h) for h in helpers))
    assert [r.status for r in helps] == [201] * len(helpers), [await r.text() for r in helps if r.status != 201]
    page = await (await client.get(f"/api/v1/bargains/{bargain_id}", headers=owner)).json()
    assert page["finished"] is True
    return bargain_id


async def _claim_at_once(client: TestClient, bargain_id: int, owner: dict[str, str], n: int) -> list[Any]:
    resps = await asyncio.gather(*(client.post(f"/api/v1/bargains/{bargain_id}/claim", headers=owner)
                                   for _ in range(n)))  # fmt: skip
    assert sorted(r.status for r in resps) == [200] * (n - 1) + [201]
    return [await r.json() for r in resps]


async def _budget_left(client: TestClient, campaign: Campaign) -> int:
    return int(await client.server.app[REDIS].get(CampaignKeys(campaign.id).budget))


async def test_a_cut_voucher_is_worth_the_cut_and_issued_once_under_100_claims(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, "bargain", budget=100_000)
    owner, *helpers = await customers(client, 3, prefix="o_cv")
    bargain_id = await _finished(client, campaign, owner, helpers)
    answers = await _claim_at_once(client, bargain_id, owner, 100)
    # Every answer, the winner's and the replays, shows the same voucher: 3,000 - 1,000 fen.
    template = await CouponTemplate.get(campaign_id=campaign.id)
    expected = {"face_value": 2_000, "coupon_id": template.id, "status": "issued", "refusal": None}
    assert all(a["voucher"] == expected for a in answers), answers[0]
    [grant] = await RewardGrant.filter(campaign_id=campaign.id)
    assert (grant.face_value, grant.status, grant.trigger, grant.ref) == (2_000, "issued", "bargain",
                                                                          f"bargain:{bargain_id}")  # fmt: skip
    # The budget in Redis took the voucher's value, not the coupon's 999.
    assert await _budget_left(client, campaign) == 98_000
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    [voucher] = await Voucher.filter(campaign_id=campaign.id)
    assert (voucher.face_value, voucher.template_id, voucher.claim_id) == (2_000, template.id, grant.claim_id)
    assert (await Campaign.get(id=campaign.id)).budget_spent == 2_000
    # The campaign's points are paid too, once; its coupon is not granted as such.
    points = await (await client.get("/api/v1/me/points", headers=owner)).json()
    assert points["balance"] == 5
    wallet = await (await client.get("/api/v1/me/vouchers", headers=owner)).json()
    assert [v["face_value"] for v in wallet["items"]] == [2_000]


@pytest.mark.parametrize(("kind", "helpers", "worth"), [("bargain", 2, 2_000), ("red_packet", 20, 1_100)])
async def test_the_wallet_shows_a_pending_voucher_at_its_own_face_value(client_with, kind, helpers, worth):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, kind, budget=None)
    owner, *others = await customers(client, 1 + helpers, prefix=f"o_pf{kind[0]}")
    bargain_id = await _finished(client, campaign, owner, others)
    resp = await client.post(f"/api/v1/bargains/{bargain_id}/claim", headers=owner)
    assert resp.status == 201, await resp.text()

    async def shown() -> list[tuple[bool, int]]:
        wallet = await (await client.get("/api/v1/me/vouchers", headers=owner)).json()
        return [(v["pending"], v["face_value"]) for v in wallet["items"]]

    # Tests run no background workers: the voucher is only in Redis, and the wallet shows
    # it at the grant's value (the cut, the packet's), not the coupon's 999.
    assert await shown() == [(True, worth)]
    [grant] = await RewardGrant.filter(campaign_id=campaign.id)
    one = await (await client.get(f"/api/v1/me/vouchers/{grant.claim_id}", headers=owner)).json()
    assert (one["pending"], one["face_value"]) == (True, worth)
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    assert await shown() == [(False, worth)]


async def test_a_cut_voucher_shown_at_the_till_before_the_worker_is_written_at_its_own_value(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, "bargain", budget=100_000)
    owner, *helpers = await customers(client, 3, prefix="o_cvq")
    bargain_id = await _finished(client, campaign, owner, helpers)
    assert (await client.post(f"/api/v1/bargains/{bargain_id}/claim", headers=owner)).status == 201
    [grant] = await RewardGrant.filter(campaign_id=campaign.id)
    # The code at the till writes the voucher at once (the worker has not run)...
    resp = await client.get(f"/api/v1/me/vouchers/{grant.claim_id}/qr", headers=owner)
    assert resp.status == 200, await resp.text()
    [voucher] = await Voucher.filter(campaign_id=campaign.id)
    assert voucher.face_value == 2_000
    assert (await Campaign.get(id=campaign.id)).budget_spent == 2_000
    # ... and the worker's pass after it changes nothing.
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    assert [v.face_value for v in await Voucher.filter(campaign_id=campaign.id)] == [2_000]
    assert (await Campaign.get(id=campaign.id)).budget_spent == 2_000


async def test_a_cut_voucher_beyond_the_budget_is_refused_and_spends_nothing(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    campaign = await _campaign(client, "bargain", budget=1_500)
    owner, *helpers = await customers(client, 3, prefix="o_cvb")
    bargain_id = await _finished(client, campaign, owner, helpers)
    answers = await _claim_at_once(client, bargain_id, owner, 20)
    assert {a["voucher"]["status"] for a in answers} == {"refused"}
    assert {a["voucher"]["refusal"] for a in answers} == {"budget"}
    assert await _budget_left(client, campaign) == 1_500
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    assert not await Voucher.filter(campaign_id=campaign.id).exists()


async def test_red_packets_claimed_as_vouchers_never_overspend_the_budget(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    # Two packets that each reach 1,100 fen, a budget that pays one of them.
    campaign = await _campaign(client, "red_packet", budget=1_500)
    first, second, *helpers = await customers(client, 42, prefix="o_rpv")
    a = await _finished(client, campaign, first, helpers[:20])
    b = await _finished(client, campaign, second, helpers[20:])
    both = await asyncio.gather(_claim_at_once(client, a, first, 50), _claim_at_once(client, b, second, 50))
    outcomes = sorted((answers[0]["voucher"]["status"], answers[0]["voucher"]["refusal"]) for answers in both)
    assert outcomes == [("issued", None), ("refused", "budget")]
    for answers in both:
        assert len({str(x["voucher"]) for x in answers}) == 1 and answers[0]["voucher"]["face_value"] == 1_100
        assert answers[0]["bargain"]["value"] == 1_100
    assert await _budget_left(client, campaign) == 400
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    [voucher] = await Voucher.filter(campaign_id=campaign.id)
    assert voucher.face_value == 1_100
    assert (await Campaign.get(id=campaign.id)).budget_spent == 1_100
    assert await RewardGrant.filter(campaign_id=campaign.id).count() == 2
    # A voucher, not points; and the packet's coupon cannot be grabbed.
    for owner in (first, second):
        assert (await (await client.get("/api/v1/me/points", headers=owner)).json())["balance"] == 0
    grab = await client.post(f"/api/v1/coupons/{voucher.template_id}/grab", headers=helpers[0])
    assert grab.status == 403 and (await error_of(grab))["details"] == {"reason": "reward_only"}


async def test_the_owner_is_told_once_when_a_bargain_or_packet_finishes(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    bargain_campaign = await _campaign(client, "bargain", budget=None)
    packet_campaign = await _campaign(client, "red_packet", budget=None)
    owner, other, *helpers = await customers(client, 25, prefix="o_bn")
    # Unfinished: no message yet.
    resp = await client.post("/api/v1/bargains", json={"campaign_id": bargain_campaign.id}, headers=other)
    pending = (await resp.json())["bargain"]["id"]
    assert (await client.post(f"/api/v1/bargains/{pending}/help", headers=helpers[0])).status == 201
    bargain_id = await _finished(client, bargain_campaign, owner, helpers[1:3])
    packet_id = await _finished(client, packet_campaign, owner, helpers[3:23])
    # Two workers at once, then a replay: each finish is one message.
    await asyncio.gather(*(BargainWorker(redis, min_idle_ms=0, batch=3).drain() for _ in range(2)))
    await BargainWorker(redis, min_idle_ms=0).drain()
    notes = await Notification.filter(kind="bargain_result")
    owner_id = (await Bargain.get(id=bargain_id)).customer_id
    assert sorted((n.key, n.customer_id) for n in notes) == sorted(
        [(f"bargain:{bargain_id}:finished", owner_id), (f"bargain:{packet_id}:finished", owner_id)]
    )
    by_key = {n.key: n.payload for n in notes}
    first = by_key[f"bargain:{bargain_id}:finished"]
    assert (first["campaign_id"], first["bargain_id"], first["campaign_title"], first["result"], first["value"]) == (
        bargain_campaign.id, bargain_id, "砍价券", "砍价成功", 1_000,
    )  # fmt: skip
    second = by_key[f"bargain:{packet_id}:finished"]
    assert (second["result"], second["value"]) == ("红包已膨胀满", 1_100)
    assert not await Notification.filter(key=f"bargain:{pending}:finished").exists()
