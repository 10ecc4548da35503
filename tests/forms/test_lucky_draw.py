"""Lucky draws over real HTTP, real Redis and the real databases: entries (free of the
day, then points), the daily limit, idempotent retries, sold-out prizes giving their
weight to the named slot, the risk gate, the records the worker writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.customers import Customer
from models.draws import LuckyDraw
from models.journey import PointsEntry
from models.notifications import Notification
from models.vouchers import Voucher
from server.keys import DRAWS, REDIS, STOCK
from server.workers import scheduler_pass
from services.campaigns.spec import DrawIn
from services.core import text
from services.forms import DrawKeys
from services.journey import points
from services.privacy import redis_data
from tests.campaigns.fixtures import campaign_body, iso, now
from tests.forms.draw_fixtures import drain, lucky_campaign, table
from tests.helpers import bearer, cheap_password_hashing, customer_login, error_of, logged_in_admin
from tests.journey.fixtures import make_campaign, shoppers

DRAWS_PATH = "/api/v1/draws"
NONE = {"key": "none", "kind": "none", "weight": 1}


async def _draw(client: Any, shopper: Any, campaign_id: Any, key: str | None = None) -> Any:
    headers = dict(shopper.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(DRAWS_PATH, json={"campaign_id": campaign_id}, headers=headers)


async def test_a_free_draw_then_paid_draws_then_the_daily_limit(client):
    draw = table([{"key": "pts", "kind": "points", "weight": 1, "points": 7}, {**NONE, "weight": 0}],
                 free_per_day=1, points_cost=10, max_per_day=3)  # fmt: skip
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1)
    first = await _draw(client, me, campaign.id)
    assert first.status == 201, await first.text()
    body = await first.json()
    assert (body["prize"], body["kind"], body["points"], body["entry"], body["points_spent"]) == (
        "pts",
        "points",
        7,
        "free",
        0,
    )
    # The free draw of the day is used: the next costs 10 points, which the customer lacks.
    poor = await _draw(client, me, campaign.id)
    assert poor.status == 409 and (await error_of(poor))["code"] == "insufficient_points"
    await points.add(me.id, 20, "test", "seed")
    for _ in range(2):
        paid = await _draw(client, me, campaign.id)
        assert paid.status == 201, await paid.text()
        assert ((await paid.json())["entry"], (await paid.json())["points_spent"]) == ("points", 10)
    limit = await _draw(client, me, campaign.id)
    assert limit.status == 409
    error = await error_of(limit)
    assert error["code"] == "draw_limit_reached" and error["details"]["max_per_day"] == 3
    await drain(client)
    rows = await LuckyDraw.filter(customer_id=me.id).order_by("id")
    expected = [("free", 0, 7), ("points", 10, 7), ("points", 10, 7)]
    assert [(r.entry, r.points_cost, r.prize_points) for r in rows] == expected
    # Each paid draw debited once, each prize credited once: 20 - 2*10 + 3*7.
    assert await points.balance_of(me.id) == 21
    refs = sorted(await PointsEntry.filter(customer_id=me.id).values_list("ref", flat=True))
    assert len(refs) == len(set(refs)) == 1 + 2 + 3
    listed = await (await client.get(f"{DRAWS_PATH}?campaign_id={campaign.id}", headers=me.headers)).json()
    assert [d["draw_id"] for d in listed["items"]] == [r.draw_id for r in reversed(rows)]


async def test_a_coupon_prize_is_a_voucher_through_the_grab_gate(client):
    prize = {"key": "coupon", "kind": "coupon", "weight": 1, "coupon_index": 0, "stock": 5}
    draw = table([prize, {**NONE, "weight": 0}])
    campaign, template = await lucky_campaign(client, draw, face_value=300, budget_limit=10_000)
    [me] = await shoppers(client, 1)
    resp = await _draw(client, me, campaign.id)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["kind"] == "coupon" and body["voucher"]["coupon_id"] == template.id
    wallet = await (await client.get("/api/v1/me/vouchers", headers=me.headers)).json()
    assert [v["code"] for v in wallet["items"]] == [body["voucher"]["code"]]  # read-your-writes, before the worker
    await drain(client)
    voucher = await Voucher.get(claim_id=body["voucher"]["claim_id"])
    assert (voucher.customer_id, voucher.template_id, voucher.face_value) == (me.id, template.id, 300)
    redis = client.server.app[REDIS]
    assert int(await redis.hget(DrawKeys(campaign.id).stock, "coupon")) == 4
    assert int(await redis.get(f"{{cmp:{campaign.id}}}:budget")) == 10_000 - 300


async def test_a_sold_out_prize_gives_its_weight_to_the_named_slot(client):
    draw = table([{"key": "big", "kind": "points", "weight": 1000, "points": 1, "stock": 2}, NONE],
                 free_per_day=10, max_per_day=10)  # fmt: skip
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1)
    won = [(await (await _draw(client, me, campaign.id)).json())["prize"] for _ in range(8)]
    assert won.count("big") == 2 and won.count("none") == 6
    assert won[:2].count("big") >= 1  # odds 1000/1001 each while in stock


async def test_a_retry_with_the_same_idempotency_key_is_the_same_draw_charged_once(client):
    draw = table([{"key": "pts", "kind": "points", "weight": 1, "points": 1}, {**NONE, "weight": 0}],
                 free_per_day=0, points_cost=10)  # fmt: skip
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 100, "test", "seed")
    first = await _draw(client, me, campaign.id, key="k-1")
    again = await _draw(client, me, campaign.id, key="k-1")
    assert first.status == again.status == 201
    assert (await first.json())["draw_id"] == (await again.json())["draw_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await _draw(client, me, campaign.id, key="k-2")
    assert (await other.json())["draw_id"] != (await first.json())["draw_id"]
    await drain(client)
    assert await LuckyDraw.filter(customer_id=me.id).count() == 2
    assert await points.balance_of(me.id) == 100 - 2 * 10 + 2 * 1


async def test_refusals_are_documented_errors(client):
    [me] = await shoppers(client, 1)
    other = await make_campaign()
    resp = await _draw(client, me, other.id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "not_a_lucky_draw"
    resp = await _draw(client, me, 999_999)
    assert resp.status == 404 and (await error_of(resp))["code"] == "not_found"
    resp = await _draw(client, me, "x")
    assert resp.status == 422 and (await error_of(resp))["code"] == "validation_failed"
    campaign, _ = await lucky_campaign(client, table([NONE, {"key": "b", "kind": "none", "weight": 1}]),
                                       status="paused")  # fmt: skip
    resp = await _draw(client, me, campaign.id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "campaign_not_active"
    anon = await client.post(DRAWS_PATH, json={"campaign_id": campaign.id})
    assert anon.status == 401


async def test_a_risky_customer_is_refused_before_drawing(client):
    campaign, _ = await lucky_campaign(client, table([NONE, {"key": "b", "kind": "none", "weight": 1}]))
    tokens = await customer_login(client, "o_risky")  # WeChat ranks only customers seen recently
    headers = bearer(tokens["access_token"])
    await client.post("/_wechat/risk-rank", json={"openid": "o_risky", "rank": 4})
    resp = await client.post(DRAWS_PATH, json={"campaign_id": campaign.id}, headers=headers)
    assert resp.status == 403 and (await error_of(resp))["code"] == "risk_refused"
    await client.post("/_wechat/risk-rank", json={"openid": "o_risky", "rank": 1})
    await client.server.app[REDIS].delete(f"risk:rank:{(await Customer.get(openid='o_risky')).id}")
    resp = await client.post(DRAWS_PATH, json={"campaign_id": campaign.id}, headers=headers)
    assert resp.status == 201, await resp.text()
    await drain(client)
    assert await LuckyDraw.filter(campaign_id=campaign.id).count() == 1


async def test_a_hold_no_draw_consumed_is_refunded_once(client):
    draw = table([NONE, {"key": "b", "kind": "none", "weight": 1}], free_per_day=0, points_cost=10)
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1)
    await points.add(me.id, 10, "test", "seed")
    draws = client.server.app[DRAWS]
    keys = DrawKeys(campaign.id)
    # A request that died between its debit and its draw: a token and a debit, no draw.
    await client.server.app[REDIS].zadd(keys.holds, {"dlost": 1})
    await points.add(me.id, -10, "lucky_draw", "draw:dlost", campaign_id=campaign.id)
    assert await draws.release_stale_holds(campaign.id) == 1
    assert await draws.release_stale_holds(campaign.id) == 0
    assert await draws.release(campaign.id, "dlost") is False
    assert await points.balance_of(me.id) == 10


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sold_out_to": "big"}, "sold_out_to"),
        ({"prizes": [{"key": "a", "kind": "none", "weight": 0}, {"key": "none", "kind": "none", "weight": 0}]},
         "add up"),
        ({"prizes": [{"key": "a", "kind": "points", "weight": 1}, NONE]}, "points is required"),
        ({"time_zone": "Mars/Base"}, "time_zone"),
        ({"prizes": [{"key": "a", "kind": "none", "weight": 1, "label": "x" * 33}, NONE]}, "label"),
        ({"prizes": [{"key": "a", "kind": "none", "weight": 1, "label": ""}, NONE]}, "label"),
    ],
)  # fmt: skip
def test_the_draw_spec_is_validated(change, message):
    base = table([{"key": "big", "kind": "points", "weight": 1, "points": 1, "stock": 1}, NONE])
    DrawIn.model_validate(base)
    with pytest.raises(ValidationError, match=message):
        DrawIn.model_validate({**base, **change})


async def test_an_operator_builds_submits_and_publishes_a_lucky_draw(client_with, monkeypatch):
    cheap_password_hashing(monkeypatch)
    client = await client_with(review_levels=0)
    op = bearer((await logged_in_admin(client, "operator", "draw-op"))["access_token"])
    draw = table([{"key": "coupon", "kind": "coupon", "weight": 1, "coupon_index": 0, "stock": 3}, NONE])
    body = campaign_body(type="lucky_draw", draw=draw, starts_at=iso(now() - timedelta(minutes=1)))
    created = await client.post("/api/v1/admin/campaigns", json=body, headers=op)
    assert created.status == 201, await created.text()
    campaign = await created.json()
    assert campaign["draw"] == DrawIn.model_validate(draw).model_dump(mode="json")
    for wrong in ({**body, "draw": None}, {**body, "type": "offer"}):
        refused = await client.post("/api/v1/admin/campaigns", json=wrong, headers=op)
        assert refused.status == 422 and (await error_of(refused))["code"] == "validation_failed"
    path = f"/api/v1/admin/campaigns/{campaign['id']}"
    assert (await client.post(f"{path}/submit", json={}, headers=op)).status == 200
    published = await client.post(f"{path}/publish", json={}, headers=op)
    assert published.status == 200, await published.text()
    await scheduler_pass(client.server.app[REDIS], client.server.app[STOCK], 0)
    [me] = await shoppers(client, 1)
    resp = await _draw(client, me, campaign["id"])
    assert resp.status == 201, await resp.text()


async def test_a_draw_record_delivered_twice_is_written_once_and_pays_once(client):
    draw = table([{"key": "pts", "kind": "points", "weight": 1, "points": 5}, {**NONE, "weight": 0}])
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1)
    resp = await _draw(client, me, campaign.id)
    assert resp.status == 201
    redis = client.server.app[REDIS]
    stream = DrawKeys(campaign.id).stream
    [(_, fields)] = await redis.xrange(stream)
    await drain(client)
    # The same record again (a worker that died after its commit, before its XACK).
    await redis.xadd(stream, fields)
    await drain(client)
    assert await LuckyDraw.filter(campaign_id=campaign.id).count() == 1
    assert await points.balance_of(me.id) == 5
    assert await PointsEntry.filter(customer_id=me.id, reason="lucky_draw_prize").count() == 1
    # The "reward earned" message, once.
    [message] = await Notification.filter(customer_id=me.id)
    assert (message.kind, message.payload["points"], message.payload["campaign_id"]) == ("reward", 5, campaign.id)


async def test_an_erasure_deletes_the_customers_draw_keys(client):
    campaign, _ = await lucky_campaign(client, table([NONE, {"key": "b", "kind": "none", "weight": 1}]))
    [me, other] = await shoppers(client, 2)
    for who in (me, other):
        assert (await _draw(client, who, campaign.id, key="k")).status == 201
    redis = client.server.app[REDIS]
    keys = DrawKeys(campaign.id)
    mine = [keys.idempotency(me.id, "k"), *[text(k) for k in await redis.keys(f"*draw:day:{me.id}:*")]]
    assert len(mine) == 2 and await redis.exists(*mine) == 2
    await redis_data.erase(redis, me.id)
    assert await redis.exists(*mine) == 0
    assert await redis.exists(keys.idempotency(other.id, "k")) == 1


def test_a_prize_may_carry_a_label_of_up_to_32_characters():
    labelled = {"key": "a", "kind": "none", "weight": 1, "label": "头奖" * 16}
    spec = DrawIn.model_validate(table([labelled, NONE]))
    assert [p.label for p in spec.prizes] == ["头奖" * 16, None]
