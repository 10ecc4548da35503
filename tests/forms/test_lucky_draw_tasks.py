"""A completed task as a lucky draw's entry (``draw.task_campaign_ids``): one draw per
completed participation of those campaigns, spent in the draw's own atomic step (never
twice under concurrent draws), after the free draws and before points, rebuilt by
reconcile after a Redis loss."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from models.draws import LuckyDraw
from models.participations import Participation
from server.keys import DRAWS, REDIS
from services.campaigns.spec import DrawIn
from services.core import text
from services.forms import DrawKeys
from services.journey import points
from tests.forms.draw_fixtures import drain, lucky_campaign, table
from tests.helpers import error_of
from tests.journey.fixtures import make_campaign, shoppers

DRAWS_PATH = "/api/v1/draws"
PRIZES = [{"key": "pts", "kind": "points", "weight": 1, "points": 1}, {"key": "none", "kind": "none", "weight": 1}]


async def _complete(campaign_id: int, customer_id: int, status: str = "completed") -> None:
    await Participation.create(
        campaign_id=campaign_id, customer_id=customer_id, status=status,
        completed_at=datetime.now(UTC) if status == "completed" else None,
    )  # fmt: skip


async def _draw(client: Any, shopper: Any, campaign_id: int) -> Any:
    return await client.post(DRAWS_PATH, json={"campaign_id": campaign_id}, headers=shopper.headers)


async def _draw_at_once(client: Any, shopper: Any, campaign_id: int, n: int) -> list[tuple[int, Any]]:
    """``n`` draws at once; one shed with 503 redis_unavailable (the pool waited too long
    on a loaded machine, before the script ran) is retried, as the mini program does."""
    answers: dict[int, tuple[int, Any]] = {}
    waiting = list(range(n))
    for _ in range(5):
        resps = await asyncio.gather(*(_draw(client, shopper, campaign_id) for _ in waiting))
        for i, resp in zip(waiting, resps, strict=True):
            answers[i] = (resp.status, await resp.json())
        waiting = [i for i in waiting if answers[i][0] == 503]
        if not waiting:
            break
    return [answers[i] for i in range(n)]


@pytest.mark.both_redis
async def test_each_completed_task_buys_one_draw_even_under_100_concurrent_draws(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    redis = client.server.app[REDIS]
    tasks = [await make_campaign(type="challenge") for _ in range(2)]
    draw = {**table(PRIZES, free_per_day=0, points_cost=0, max_per_day=1000),
            "task_campaign_ids": [t.id for t in tasks]}  # fmt: skip
    campaign, _ = await lucky_campaign(client, draw)
    busy, idle = await shoppers(client, 2, prefix="o_dt")
    for task in tasks:
        await _complete(task.id, busy.id)
    await _complete(tasks[0].id, idle.id, status="joined")  # joined, not completed: no draw
    answers = await _draw_at_once(client, busy, campaign.id, 100)
    assert sorted(status for status, _ in answers) == [201] * 2 + [409] * 98
    bodies = [body for _, body in answers]
    assert [b["entry"] for b in bodies if "entry" in b] == ["task", "task"]
    refusals = [b["error"] for b in bodies if "error" in b]
    assert {e["code"] for e in refusals} == {"task_required"}
    assert refusals[0]["details"] == {"task_campaign_ids": [t.id for t in tasks], "completed": 2, "used": 2}
    nothing = await _draw(client, idle, campaign.id)
    assert nothing.status == 409
    assert (await error_of(nothing))["details"] == {"task_campaign_ids": [t.id for t in tasks], "completed": 0,
                                                      "used": 0}  # fmt: skip
    await drain(client)
    assert await LuckyDraw.filter(campaign_id=campaign.id, customer_id=busy.id, entry="task").count() == 2
    # Redis loses the draw's state: reconcile rebuilds the tasks spent from the database.
    keys = DrawKeys(campaign.id)
    await redis.delete(keys.stock, keys.tasks)
    await client.server.app[DRAWS].reconcile(campaign.id)
    assert {text(k): text(v) for k, v in (await redis.hgetall(keys.tasks)).items()} == {str(busy.id): "2"}
    again = await _draw(client, busy, campaign.id)
    assert again.status == 409 and (await error_of(again))["code"] == "task_required"
    # A task completed later buys one more draw.
    await Participation.filter(campaign_id=tasks[0].id, customer_id=idle.id).update(status="completed")
    late = await _draw_at_once(client, idle, campaign.id, 20)
    assert sorted(status for status, _ in late) == [201] + [409] * 19


@pytest.mark.both_redis
async def test_free_draws_first_then_a_task_then_points(client_with):
    client = await client_with(grab_ip_burst=10_000, grab_ip_rate=10_000)
    task = await make_campaign(type="challenge")
    draw = {**table(PRIZES, free_per_day=1, points_cost=10, max_per_day=10), "task_campaign_ids": [task.id]}
    campaign, _ = await lucky_campaign(client, draw)
    [me] = await shoppers(client, 1, prefix="o_dtp")
    await _complete(task.id, me.id)
    await points.add(me.id, 10, "test", "seed-tasks")
    entries = []
    for _ in range(3):
        resp = await _draw(client, me, campaign.id)
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        entries.append((body["entry"], body["points_spent"]))
    assert entries == [("free", 0), ("task", 0), ("points", 10)]
    broke = await _draw(client, me, campaign.id)
    assert broke.status == 409 and (await error_of(broke))["code"] == "insufficient_points"
    await drain(client)
    assert sorted(await LuckyDraw.filter(campaign_id=campaign.id).values_list("entry", flat=True)) == [
        "free", "points", "task",
    ]  # fmt: skip


def test_a_task_campaign_named_twice_is_refused():
    body = table(PRIZES)
    assert DrawIn(**{**body, "task_campaign_ids": [3, 4]}).task_campaign_ids == [3, 4]
    with pytest.raises(ValidationError, match="task campaign appears twice"):
        DrawIn(**{**body, "task_campaign_ids": [3, 3]})
