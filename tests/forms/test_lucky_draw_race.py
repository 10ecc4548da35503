"""Lucky draws under real concurrency, on one Redis and on the 3-master cluster: the last
prizes are issued exactly, points are charged exactly once per draw, and a server killed
mid-burst leaves every decided draw in the database exactly once, with reconcile
rebuilding the draw's Redis state from the database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from models.draws import LuckyDraw
from models.journey import PointsEntry
from models.vouchers import Voucher
from server.keys import DRAWS, REDIS
from services.core import text
from services.forms import DrawKeys, DrawsWorker
from services.journey import points
from tests.forms.draw_fixtures import drain, lucky_campaign, table
from tests.helpers import collect_sockets_of_a_stopped_app
from tests.journey.fixtures import shoppers

pytestmark = pytest.mark.both_redis

DRAWS_PATH = "/api/v1/draws"
COST = 10


def _draw_table() -> dict[str, Any]:
    return table(
        [
            {"key": "first", "kind": "coupon", "weight": 500, "coupon_index": 0, "stock": 10},
            {"key": "second", "kind": "points", "weight": 300, "points": 7, "stock": 20},
            {"key": "none", "kind": "none", "weight": 200},
        ],
        free_per_day=1, points_cost=COST, max_per_day=4,
    )  # fmt: skip


async def _draw_all(client: Any, jobs: list[tuple[dict[str, str], str]], campaign_id: int) -> list[Any]:
    """Every draw at once, each under its own Idempotency-Key; one shed with 503 (no Redis
    connection free in time, before any script ran) is retried under the same key, as
    the mini program does. The final answers, in ``jobs`` order."""
    answers: dict[int, Any] = {}
    waiting = list(range(len(jobs)))
    for _ in range(5):
        resps = await asyncio.gather(
            *(
                client.post(DRAWS_PATH, json={"campaign_id": campaign_id},
                            headers={**jobs[i][0], "Idempotency-Key": jobs[i][1]})
                for i in waiting
            )
        )  # fmt: skip
        for i, resp in zip(waiting, resps, strict=True):
            answers[i] = (resp.status, await resp.json())
        waiting = [i for i in waiting if answers[i][0] == 503]
        if not waiting:
            break
    return [answers[i] for i in range(len(jobs))]


async def _ledger_per_draw(campaign_id: int) -> None:
    """Every recorded paid draw was debited exactly once, and every debit not matched by
    a recorded draw was refunded exactly once."""
    draws = {d.draw_id: d for d in await LuckyDraw.filter(campaign_id=campaign_id)}
    entries = await PointsEntry.filter(campaign_id=campaign_id)
    debits = {e.ref.removeprefix("draw:"): e for e in entries if e.ref.startswith("draw:")}
    refunds = {e.ref.removeprefix("draw-refund:"): e for e in entries if e.ref.startswith("draw-refund:")}
    paid = {d for d, row in draws.items() if row.entry == "points"}
    assert paid <= set(debits)
    assert set(refunds) == set(debits) - paid
    assert all(debits[d].delta == -COST for d in debits) and all(r.delta == COST for r in refunds.values())
    assert set(refunds).isdisjoint(paid)


async def test_1000_concurrent_draws_on_the_last_10_prizes_issue_exactly_10(client_with):
    client = await client_with(grab_ip_burst=100_000, grab_ip_rate=100_000)
    campaign, template = await lucky_campaign(client, _draw_table(), coupon_stock=1000)
    people = await shoppers(client, 250, prefix="o_draw")
    for p in people:
        await points.add(p.id, 3 * COST, "test", f"seed:{p.id}")
    jobs = [(p.headers, f"{p.id}-{n}") for p in people for n in range(4)]
    started = time.monotonic()
    answers = await _draw_all(client, jobs, campaign.id)
    elapsed = time.monotonic() - started
    assert Counter(status for status, _ in answers) == {201: 1000}, Counter(s for s, _ in answers)
    won = Counter(body["prize"] for _, body in answers)
    assert won["first"] == 10 and won["second"] == 20 and won["none"] == 970
    # One free draw and three paid ones each: the balance covered exactly three.
    per_customer = Counter((jobs[i][1].split("-")[0], body["entry"]) for i, (_, body) in enumerate(answers))
    assert set(per_customer.values()) == {1, 3} and len(per_customer) == 500
    await drain(client)
    assert await LuckyDraw.filter(campaign_id=campaign.id).count() == 1000
    assert await LuckyDraw.filter(campaign_id=campaign.id, prize_key="first").count() == 10
    assert await Voucher.filter(template_id=template.id).count() == 10
    await _ledger_per_draw(campaign.id)
    for p in people[:50]:
        seconds = await LuckyDraw.filter(customer_id=p.id, prize_key="second").count()
        assert await points.balance_of(p.id) == 3 * COST - 3 * COST + 7 * seconds
    redis = client.server.app[REDIS]
    stock = await redis.hgetall(DrawKeys(campaign.id).stock)
    assert {text(k): text(v) for k, v in stock.items()} == {"first": "0", "second": "0", "loaded": "1"}
    print(f"1000 draws over HTTP in {elapsed:.2f}s")


async def _redis_state(client: Any, campaign_id: int, customer_ids: list[int], day: str) -> dict[str, Any]:
    redis = client.server.app[REDIS]
    keys = DrawKeys(campaign_id)
    state: dict[str, Any] = {"stock": {text(k): text(v) for k, v in (await redis.hgetall(keys.stock)).items()}}
    for c in customer_ids:
        found = await redis.hgetall(keys.day(c, day))
        state[str(c)] = {text(k): text(v) for k, v in found.items()}
    return state


async def test_killed_mid_burst_every_draw_is_in_the_database_once_and_reconcile_rebuilds(client_with):
    client = await client_with(grab_ip_burst=100_000, grab_ip_rate=100_000)
    campaign, _ = await lucky_campaign(client, _draw_table(), coupon_stock=1000)
    people = await shoppers(client, 100, prefix="o_kill")
    for p in people:
        await points.add(p.id, 3 * COST, "test", f"seed:{p.id}")
    worker = asyncio.create_task(DrawsWorker(client.server.app[DRAWS], min_idle_ms=0).run_forever())

    async def one(p: Any, n: int, client: Any = client) -> Any:
        headers = {**p.headers, "Idempotency-Key": f"{p.id}-{n}"}
        resp = await client.post(DRAWS_PATH, json={"campaign_id": campaign.id}, headers=headers)
        return resp.status, await resp.json()

    burst = [asyncio.create_task(one(p, n)) for p in people for n in range(4)]
    while sum(t.done() for t in burst) < 80:
        await asyncio.sleep(0.01)
    # Kill: the worker and the server stop with draws in flight (handlers cancelled).
    worker.cancel()
    with contextlib.suppress(BaseException):
        await worker
    client = await client_with(grab_ip_burst=100_000, grab_ip_rate=100_000)
    results = await asyncio.gather(*burst, return_exceptions=True)
    collect_sockets_of_a_stopped_app()
    answered = [r for r in results if isinstance(r, tuple) and r[0] == 201]
    assert len(answered) >= 80
    draws = client.server.app[DRAWS]
    await drain(client)
    # Holds of requests killed between their debit and their draw: given back by the sweep.
    await draws.release_stale_holds(campaign.id, now_ms=int(time.time() * 1000) + 10 * 60 * 1000)
    rows = await LuckyDraw.filter(campaign_id=campaign.id).values_list("draw_id", flat=True)
    assert len(rows) == len(set(rows))
    assert {body["draw_id"] for _, body in answered} <= set(rows)
    redis = client.server.app[REDIS]
    table_ = await draws.table(campaign.id)
    assert table_ is not None
    day = table_.day_of(datetime.now(UTC))
    counted = 0
    for p in people:
        counted += int(await redis.hget(DrawKeys(campaign.id).day(p.id, day), "n") or 0)
    assert counted == len(rows)  # every decided draw (counted by the script) is in the database
    await _ledger_per_draw(campaign.id)
    # Reconcile rebuilds the same state from the database after Redis lost it.
    before = await _redis_state(client, campaign.id, [p.id for p in people], day)
    await redis.delete(DrawKeys(campaign.id).stock, *[DrawKeys(campaign.id).day(p.id, day) for p in people[:1]])
    for p in people[1:]:
        await redis.delete(DrawKeys(campaign.id).day(p.id, day))
    await draws.reconcile(campaign.id)
    assert await _redis_state(client, campaign.id, [p.id for p in people], day) == before
