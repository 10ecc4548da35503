"""Impressions and clicks the mini program reports, counted per campaign and UTC day in
Redis (under the campaign's hash tag): totals per kind and per section, and unique
customers reached / clicking (HyperLogLog, about 1% error). Kept TRACKING_TTL_DAYS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from services.core import AnyRedis, text
from services.stock import CampaignKeys

TRACKING_TTL_DAYS = 400
_RANGE_SCRIPT = (Path(__file__).parent / "track_range.lua").read_text()


@dataclass(frozen=True)
class Seen:
    kind: str  # impression, click
    campaign_id: int
    section: str | None


def keys_of(campaign_id: int, day: date) -> tuple[str, str, str]:
    """A campaign's day: its counts hash, its reach and its clickers HyperLogLogs (one
    hash tag, so multi-key commands over a campaign's days stay in one cluster slot)."""
    tag = CampaignKeys(campaign_id).tag
    stamp = day.strftime("%Y%m%d")
    return f"{tag}:track:{stamp}", f"{tag}:reach:{stamp}", f"{tag}:clickers:{stamp}"


async def record(redis: AnyRedis, customer_id: int, events: list[Seen], now: datetime) -> None:
    """Count a batch in one pipelined round trip."""
    ttl = TRACKING_TTL_DAYS * 86_400
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            counts, reach, clickers = keys_of(event.campaign_id, now.date())
            pipe.hincrby(counts, f"{event.kind}s", 1)
            if event.section:
                pipe.hincrby(counts, f"{event.kind}s:{event.section}", 1)
            unique = reach if event.kind == "impression" else clickers
            pipe.pfadd(unique, customer_id)
            pipe.expire(counts, ttl)
            pipe.expire(unique, ttl)
        await pipe.execute()


async def daily(redis: AnyRedis, campaign_id: int, day: date) -> dict[str, float | int | dict[str, int]]:
    """One campaign's day: impressions, clicks, reach, clickers, click-through rate
    (clicks / impressions), and the per-section counts."""
    counts, reach, clickers = keys_of(campaign_id, day)
    raw = await redis.hgetall(counts)
    values = {text(k): int(v) for k, v in raw.items()}
    impressions, clicks = values.get("impressions", 0), values.get("clicks", 0)
    return {
        "impressions": impressions,
        "clicks": clicks,
        "reach": int(await redis.pfcount(reach)),
        "clickers": int(await redis.pfcount(clickers)),
        "ctr": round(clicks / impressions, 4) if impressions else 0.0,
        "sections": {k: v for k, v in values.items() if ":" in k},
    }


@dataclass
class DayTraffic:
    impressions: int = 0
    clicks: int = 0
    reach: int = 0
    clickers: int = 0
    sections: dict[str, int] = field(default_factory=dict)


@dataclass
class RangeTraffic:
    """Per day (in the order asked) and over the whole range: reach and clickers are the
    union of the days' HyperLogLogs, so a customer seen on several days counts once."""

    days: list[DayTraffic]
    reach: int
    clickers: int


async def over_range(redis: AnyRedis, campaign_id: int, days: Sequence[date]) -> RangeTraffic:
    """One campaign over some days (non-empty, at most a few hundred), in one round trip."""
    keys = [key for day in days for key in keys_of(campaign_id, day)]
    replies = await redis.register_script(_RANGE_SCRIPT)(keys=keys)
    out = []
    for i in range(len(days)):
        flat, reach, clickers = replies[3 * i : 3 * i + 3]
        values = {text(flat[j]): int(flat[j + 1]) for j in range(0, len(flat), 2)}
        out.append(
            DayTraffic(
                impressions=values.get("impressions", 0), clicks=values.get("clicks", 0), reach=int(reach),
                clickers=int(clickers), sections={k: v for k, v in values.items() if ":" in k},
            )
        )  # fmt: skip
    return RangeTraffic(out, int(replies[-2]), int(replies[-1]))


async def counts_over(redis: AnyRedis, campaign_ids: Sequence[int], days: Sequence[date]) -> dict[int, tuple[int, int]]:
    """Impressions and clicks of each campaign summed over the days, in one pipelined
    round trip (one command per campaign and day)."""
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in campaign_ids:
            for day in days:
                pipe.hmget(keys_of(campaign_id, day)[0], "impressions", "clicks")
        replies = await pipe.execute()
    out: dict[int, tuple[int, int]] = {}
    for i, campaign_id in enumerate(campaign_ids):
        rows = replies[i * len(days) : (i + 1) * len(days)]
        out[campaign_id] = (sum(int(r[0] or 0) for r in rows), sum(int(r[1] or 0) for r in rows))
    return out
