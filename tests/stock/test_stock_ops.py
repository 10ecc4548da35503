"""The claims worker under failure, reconciliation after a Redis loss, adding stock,
targeted and exclusive coupons, and the wallet seeing a grab at once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from models.campaigns import Campaign, CouponTemplate
from models.customers import Customer
from models.participations import Participation
from models.vouchers import Voucher
from server.keys import REDIS, STOCK
from services.campaigns import exclusivity
from services.core import Actor
from services.stock import CONSUMER_GROUP, STREAMS_REGISTRY, CampaignKeys, ClaimsWorker, persist
from services.stock.claims import _parse
from tests.helpers import bearer, cheap_password_hashing, error_of, logged_in_admin
from tests.stock.fixtures import customers, grab_all, live_coupon

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.both_redis


async def _grab_all(client, coupon, auths) -> list[int]:
    return await grab_all(client, coupon.grab_path, auths)


async def test_a_worker_dying_mid_batch_loses_nothing_and_doubles_nothing(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    coupon = await live_coupon(client, stock=300)
    statuses = await _grab_all(client, coupon, await customers(client, 300))
    assert statuses.count(201) == 300
    stream = CampaignKeys(coupon.campaign.id).stream
    # Worker A reads everything, commits half, and dies before acknowledging anything.
    dead = ClaimsWorker(redis, name="dead", min_idle_ms=0)
    await dead._ensure_group(stream)
    [(_, entries)] = await redis.xreadgroup(CONSUMER_GROUP, "dead", {stream: ">"}, count=1000)
    assert len(entries) == 300
    await persist([_parse(entry_id, fields) for entry_id, fields in entries[:150]])
    # Worker B takes over the pending entries and finishes: each claim exactly once.
    await ClaimsWorker(redis, name="heir", min_idle_ms=0).drain()
    assert await Voucher.filter(template_id=coupon.template.id).count() == 300
    assert len(set(await Voucher.filter(template_id=coupon.template.id).values_list("claim_id", flat=True))) == 300
    assert await redis.xlen(stream) == 0
    assert (await redis.xpending(stream, CONSUMER_GROUP))["pending"] == 0


async def test_a_worker_cancelled_while_running(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    coupon = await live_coupon(client, stock=400)
    await _grab_all(client, coupon, await customers(client, 400))
    worker = ClaimsWorker(redis, name="cancelled", batch=50, min_idle_ms=0)
    task = asyncio.create_task(worker.run_forever())
    while await Voucher.filter(template_id=coupon.template.id).count() < 100:
        await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await Voucher.filter(template_id=coupon.template.id).count() < 400
    await ClaimsWorker(redis, name="next", min_idle_ms=0).drain()
    assert await Voucher.filter(template_id=coupon.template.id).count() == 400


async def test_redis_loss_then_reconcile_restores_counters(client_with, monkeypatch):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis, stock = client.server.app[REDIS], client.server.app[STOCK]
    cheap_password_hashing(monkeypatch)
    root = bearer((await logged_in_admin(client, "superadmin", "root"))["access_token"])
    coupon = await live_coupon(client, stock=5, face_value=100, budget_limit=450)
    auths = await customers(client, 6)
    assert (await _grab_all(client, coupon, auths[:4])).count(201) == 4
    await ClaimsWorker(redis, min_idle_ms=0).drain()
    await redis.flushall()  # the loss
    resp = await client.post("/api/v1/admin/coupons/reconcile", json={}, headers=root)
    assert resp.status == 200, await resp.text()
    [report] = (await resp.json())["items"]
    assert report["issued"] == 4 and report["stock_before"] is None and report["stock_after"] == 1
    assert report["repaired"] is True
    keys = CampaignKeys(coupon.campaign.id)
    assert int(await redis.get(keys.budget)) == 50  # 450 - 4 x 100: not enough for a fifth
    # The four holders cannot grab again; the last stock is blocked by the budget.
    resp = await client.post(coupon.grab_path, headers=auths[0])
    assert (await error_of(resp))["code"] == "coupon_limit_reached"
    resp = await client.post(coupon.grab_path, headers=auths[4])
    assert (await error_of(resp))["code"] == "budget_exhausted"
    # A second reconcile finds nothing to repair.
    resp = await client.post("/api/v1/admin/coupons/reconcile", json={"coupon_id": coupon.template.id}, headers=root)
    assert [i["repaired"] for i in (await resp.json())["items"]] == [False]
    coupon_key = CampaignKeys(coupon.campaign.id).coupon(coupon.template.id)
    assert int(await stock.redis.hget(coupon_key, "stock")) == 1


async def test_reconcile_reports_only_what_drifted_and_counts_holders_as_customers(client_with, monkeypatch):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    cheap_password_hashing(monkeypatch)
    root = bearer((await logged_in_admin(client, "superadmin", "root"))["access_token"])
    untouched = await live_coupon(client, stock=5)  # nobody grabbed it: an empty holders hash
    coupon = await live_coupon(client, stock=5, per_user_limit=2)
    [auth] = await customers(client, 1)
    for _ in range(2):
        resp = await client.post(coupon.grab_path, headers=auth)
        assert resp.status == 201, await resp.text()
    await ClaimsWorker(redis, min_idle_ms=0).drain()

    async def report_of(coupon_id: int) -> dict:
        resp = await client.post("/api/v1/admin/coupons/reconcile", json={"coupon_id": coupon_id}, headers=root)
        assert resp.status == 200, await resp.text()
        [item] = (await resp.json())["items"]
        return item

    # Nothing drifted: nothing repaired, even for a coupon nobody holds.
    report = await report_of(untouched.template.id)
    assert report["repaired"] is False and report["drift"] == {"stock": None, "holders": None}
    assert report["holder_customers_before"] == report["holder_customers_after"] == 0
    report = await report_of(coupon.template.id)
    assert report["repaired"] is False and report["drift"] == {"stock": None, "holders": None}
    # One customer with two vouchers is one holder.
    assert report["issued"] == 2 and report["holder_customers_after"] == 1
    assert "holders_after" not in report and "holders_before" not in report

    # Redis forgot the holder (but not the stock): the holders are repaired, not the stock.
    await redis.delete(CampaignKeys(coupon.campaign.id).holders(coupon.template.id))
    report = await report_of(coupon.template.id)
    assert report["repaired"] is True
    assert report["drift"] == {"stock": None, "holders": {"before": 0, "after": 1, "corrected": 1}}
    # The stock drifted: only the stock is repaired.
    await redis.hset(CampaignKeys(coupon.campaign.id).coupon(coupon.template.id), "stock", 99)
    report = await report_of(coupon.template.id)
    assert report["repaired"] is True
    assert report["drift"] == {"stock": {"before": 99, "after": 3}, "holders": None}


async def test_reconcile_command(client_with, settings):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    coupon = await live_coupon(client, stock=3)
    await _grab_all(client, coupon, await customers(client, 2))
    await redis.hset(CampaignKeys(coupon.campaign.id).coupon(coupon.template.id), "stock", 99)  # drift
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "SECRET_KEY": settings.secret_key, "APP_ENV": "test", "AUTO_MIGRATE": "false",
           "REDIS_CLUSTER": "true" if settings.redis_cluster else "false"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "reconcile-stock", "--coupon", str(coupon.template.id), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "issued 2, stock 99 -> 1" in out.decode() and "repaired" in out.decode()
    assert await Voucher.filter(template_id=coupon.template.id).count() == 2


async def test_admin_adds_stock(client_with, monkeypatch):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    cheap_password_hashing(monkeypatch)
    op = bearer((await logged_in_admin(client, "operator", "op"))["access_token"])
    coupon = await live_coupon(client, stock=1, face_value=100, budget_limit=250)
    auths = await customers(client, 3)
    assert (await _grab_all(client, coupon, auths[:2])).count(201) == 1
    path = f"/api/v1/admin/coupons/{coupon.template.id}/stock"
    resp = await client.post(path, json={"add": 5}, headers=op)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["total_stock"] == 6 and (await resp.json())["redis_stock"] == 5
    assert (await client.post(coupon.grab_path, headers=auths[2])).status == 201
    # 250 budget: two coupons of 100 issued, 50 left: no more stock without a top-up.
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    resp = await client.post(path, json={"add": 5}, headers=op)
    assert (await error_of(resp))["code"] == "budget_exhausted"
    resp = await client.post(path, json={"add": 0}, headers=op)
    assert resp.status == 422
    assert (await CouponTemplate.get(id=coupon.template.id)).total_stock == 6


async def test_targeted_coupon_only_for_its_audience(client):
    coupon = await live_coupon(client, campaign={"visibility": "targeted", "audience_rule": {"tier": "gold"}})
    auths = await customers(client, 2)
    gold = (await Customer.all().order_by("id"))[0]
    gold.membership_tier = "gold"
    await gold.save()
    await client.server.app[STOCK].load_campaign(coupon.campaign.id)  # audience is taken at load
    resp = await client.post(coupon.grab_path, headers=auths[1])
    assert resp.status == 403 and (await error_of(resp))["code"] == "not_eligible"
    resp = await client.post(coupon.grab_path, headers=auths[0])
    assert resp.status == 201, await resp.text()


async def test_exclusive_campaigns(client):
    first = await live_coupon(client)
    second = await live_coupon(client)
    await exclusivity.set_exclusive(first.campaign.id, [second.campaign.id], Actor.system())
    auths = await customers(client, 2)
    assert (await client.post(first.grab_path, headers=auths[0])).status == 201
    # The voucher is not persisted yet: the recent claim still blocks the exclusive one.
    resp = await client.post(second.grab_path, headers=auths[0])
    assert resp.status == 409
    assert (await error_of(resp))["details"]["campaign_ids"] == [first.campaign.id]
    customer = (await Customer.all().order_by("id"))[1]
    await Participation.create(campaign_id=first.campaign.id, customer_id=customer.id)
    resp = await client.post(second.grab_path, headers=auths[1])
    assert (await error_of(resp))["code"] == "exclusive_conflict"


async def test_wallet_shows_a_grab_before_the_worker_writes_it(client):
    coupon = await live_coupon(client)
    [auth] = await customers(client, 1)
    grabbed = (await (await client.post(coupon.grab_path, headers=auth)).json())["voucher"]
    resp = await client.get("/api/v1/me/vouchers", headers=auth)
    [item] = (await resp.json())["items"]
    assert item["id"] == grabbed["id"] and item["pending"] is True and item["status"] == "available"
    assert await Voucher.all().count() == 0
    await ClaimsWorker(client.server.app[REDIS], min_idle_ms=0).drain()
    resp = await client.get("/api/v1/me/vouchers?status=available", headers=auth)
    [item] = (await resp.json())["items"]
    assert item["id"] == grabbed["id"] and item["pending"] is False and item["days_left"] == 6
    resp = await client.get("/api/v1/me/vouchers?status=used", headers=auth)
    assert (await resp.json())["items"] == []
    assert await Campaign.all().count() == 1


async def test_an_archived_campaign_stops_being_watched_once_drained(client_with):
    """The worker and the wallet's read-your-writes read every registered stream: an
    archived campaign leaves the registry, but only when nothing is left to persist."""
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis, stock = client.server.app[REDIS], client.server.app[STOCK]
    coupon = await live_coupon(client, stock=5)
    [auth] = await customers(client, 1, prefix="o_archive")
    assert (await client.post(coupon.grab_path, headers=auth)).status == 201
    stream = CampaignKeys(coupon.campaign.id).stream
    await Campaign.filter(id=coupon.campaign.id).update(status="archived")
    assert await stock.unregister_stream(coupon.campaign.id) is False  # the claim is not persisted yet
    assert await redis.sismember(STREAMS_REGISTRY, stream)
    await ClaimsWorker(redis).drain()
    assert await stock.unregister_stream(coupon.campaign.id) is True
    assert not await redis.sismember(STREAMS_REGISTRY, stream)
    # The wallet still lists the voucher, now from the database.
    body = await (await client.get("/api/v1/me/vouchers", headers=auth)).json()
    assert [item["pending"] for item in body["items"]] == [False]
