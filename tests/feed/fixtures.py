"""Random feed catalogs shared by the scoring and card tests: the tag, category and tier
vocabularies and a seeded campaign snapshot builder."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from services.campaigns import CampaignSnapshot
from services.core import media_url

TAGS = ["coffee", "tea", "bakery", "books", "wine", "pets"]
CATEGORIES = ["drinks", "food", "toys", "home"]
TIERS = ["standard", "silver", "gold", "platinum"]


def random_snapshot(i: int, rng: random.Random, now: datetime, store_ids: list[int]) -> CampaignSnapshot:
    """Campaign ``i`` with random phase, visibility, tags and stores drawn from ``rng`` (seed
    it for a reproducible catalog); ``store_ids`` must hold at least 4 ids."""
    status = rng.choice(["active", "active", "active", "scheduled"])
    starts = now + timedelta(hours=rng.uniform(-200, 100), microseconds=rng.randint(0, 999_999))
    ends = starts + timedelta(hours=rng.choice([rng.uniform(0.5, 80), rng.uniform(80, 900)]))
    visible_from = starts - timedelta(hours=rng.uniform(0, 150)) if rng.random() < 0.5 else None
    targeted = rng.random() < 0.3
    rule = rng.choice([{"tier": ["gold", "platinum"]}, {"city": "Shanghai"}, {"not": {"tier": "silver"}}])
    return CampaignSnapshot(
        id=i, type="offer", status=status, visibility="targeted" if targeted else "public",
        audience_rule=rule if targeted else None, content={"en": {"title": f"c{i}"}}, default_language="en",
        tags=tuple(rng.sample(TAGS, rng.randint(0, 3))), categories=tuple(rng.sample(CATEGORIES, rng.randint(0, 2))),
        theme_id=None, banner_media_id=i if i % 2 else None, poster_media_id=None, visible_from=visible_from,
        starts_at=starts, banner_url=media_url(f"{i:064x}", "png") if i % 2 else None,
        ends_at=ends, redeem_until=None, channels=("miniprogram",),
        store_ids=None if rng.random() < 0.5 else frozenset(rng.sample(store_ids, rng.randint(0, 4))),
        participant_cap=None, goal_metric=None, goal_target=None, goal_window_days=None, reward_points=0,
        reward_badge=None, coupons=(), exclusive_with=frozenset(),
    )  # fmt: skip
