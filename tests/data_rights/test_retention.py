"""Retention: old tracking reach, finished outbox rows and redemption idempotency keys
are purged in batches; newer ones stay; the pass runs once per interval across processes."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from models.notifications import Notification
from models.redemptions import Redemption, VoucherReminder
from models.vouchers import Voucher
from server.keys import REDIS, SETTINGS
from server.settings import Settings
from server.workers import retention_pass
from services.analytics import tracking
from tests.data_rights.fixtures import history, person
from tests.journey.fixtures import pos, purchase, shoppers


async def _outbox(customer_id: int, *, finished_days_ago: float, status: str, key: str) -> Notification:
    finished = datetime.now(UTC) - timedelta(days=finished_days_ago)
    return await Notification.create(
        key=key, kind="reward", customer_id=customer_id, status=status, next_attempt_at=finished,
        finished_at=None if status == "pending" else finished,
    )  # fmt: skip


async def _seed(client: TestClient) -> dict[str, int]:
    """Old and new rows of every purged kind; returns ids by label."""
    me = await person(client)
    await history(client, me)  # one redemption with an Idempotency-Key, one reminder
    now = datetime.now(UTC)
    ids: dict[str, int] = {}
    for i in range(5):  # more than one batch when the batch is 2
        ids[f"old_sent_{i}"] = (await _outbox(me.id, finished_days_ago=40, status="sent", key=f"old-{i}")).id
    ids["old_failed"] = (await _outbox(me.id, finished_days_ago=31, status="failed", key="old-failed")).id
    ids["new_sent"] = (await _outbox(me.id, finished_days_ago=10, status="sent", key="new-sent")).id
    ids["old_pending"] = (await _outbox(me.id, finished_days_ago=40, status="pending", key="old-pending")).id
    [reminder] = await VoucherReminder.filter(customer_id=me.id)
    await VoucherReminder.filter(id=reminder.id).update(sent_at=now - timedelta(days=45))
    ids["old_reminder"] = reminder.id
    [old_redemption] = await Redemption.filter(customer_id=me.id)
    await Redemption.filter(id=old_redemption.id).update(created_at=now - timedelta(days=8))
    ids["old_redemption"] = old_redemption.id
    voucher = await Voucher.get(id=me.available)
    new_redemption = await Redemption.create(
        voucher_id=voucher.id, store_id=old_redemption.store_id, staff_id=old_redemption.staff_id,
        customer_id=me.id, campaign_id=voucher.campaign_id, template_id=voucher.template_id, face_value=1,
        idempotency_key="fresh-key", created_at=now - timedelta(days=1),
    )  # fmt: skip
    ids["new_redemption"] = new_redemption.id
    # Tracking: a day past the retention and one within it.
    redis = client.server.app[REDIS]
    campaign = me.coupons[0].campaign.id
    for days in (100, 5):  # past the retention, and within it
        day = (now - timedelta(days=days)).date()
        await tracking.record(redis, me.id, [tracking.Seen("impression", campaign, None)], now - timedelta(days=days))
        await tracking.record(redis, me.id, [tracking.Seen("click", campaign, None)], now - timedelta(days=days))
        counts, reach, clickers = tracking.keys_of(campaign, day)
        assert await redis.exists(counts, reach, clickers) == 3
    ids["campaign"] = campaign
    return ids


async def _purged(client: TestClient, ids: dict[str, int]) -> None:
    redis = client.server.app[REDIS]
    left = set(await Notification.all().values_list("key", flat=True))
    assert not {f"old-{i}" for i in range(5)} & left and "old-failed" not in left
    assert {"new-sent", "old-pending"} <= left  # newer, or never finished: kept
    assert not await VoucherReminder.filter(id=ids["old_reminder"]).exists()
    assert (await Redemption.get(id=ids["old_redemption"])).idempotency_key is None
    assert (await Redemption.get(id=ids["new_redemption"])).idempotency_key == "fresh-key"
    now = datetime.now(UTC)
    old_counts, old_reach, old_clickers = tracking.keys_of(ids["campaign"], (now - timedelta(days=100)).date())
    new_counts, new_reach, new_clickers = tracking.keys_of(ids["campaign"], (now - timedelta(days=5)).date())
    assert await redis.exists(old_reach, old_clickers) == 0
    assert await redis.exists(old_counts) == 1  # anonymous totals keep their own lifetime
    assert await redis.exists(new_counts, new_reach, new_clickers) == 3


@pytest.mark.both_redis
async def test_old_rows_are_purged_in_batches_and_new_ones_kept(client_with: object) -> None:
    client = await client_with(retention_batch=2)  # type: ignore[operator]
    ids = await _seed(client)
    settings = client.server.app[SETTINGS]
    assert await retention_pass(client.server.app[REDIS], settings) is True
    await _purged(client, ids)


async def test_two_processes_purge_once_per_interval(client: TestClient, settings: Settings, redis_url: str) -> None:
    ids = await _seed(client)
    # Two processes: two Redis connections to the one Redis, the same settings.
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        fast = dataclasses.replace(settings, retention_interval=1)
        ran = await asyncio.gather(retention_pass(first, fast), retention_pass(second, fast))
        assert sorted(ran) == [False, True], ran
        await _purged(client, ids)
        # Within the interval nobody runs again, even with new old rows to purge.
        customer = (await Notification.get(key="new-sent")).customer_id
        await _outbox(customer, finished_days_ago=50, status="sent", key="late")
        assert await retention_pass(first, fast) is False and await retention_pass(second, fast) is False
        assert await Notification.filter(key="late").exists()
        await asyncio.sleep(1.2)  # the interval is over: the next pass purges
        assert await retention_pass(second, fast) is True
        assert not await Notification.filter(key="late").exists()
    finally:
        await first.aclose()
        await second.aclose()


async def test_used_nonces_expire_at_the_end_of_their_window(client: TestClient) -> None:
    """Integration nonces are Redis keys living exactly their replay window."""
    [shopper] = await shoppers(client, 1, prefix="o_nonce")
    shop = await pos(client)
    resp = await shop.post(purchase("n-1", shopper, 100), nonce="nonce-retention-1")
    assert resp.status in (200, 201), await resp.text()
    redis = client.server.app[REDIS]
    ttl = await redis.ttl(f"integration-nonce:{shop.key_id}:nonce-retention-1")
    window = 2 * client.server.app[SETTINGS].integration_max_skew
    assert 0 < ttl <= window
