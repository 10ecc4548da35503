"""The domain policies are filled in from settings in one place (server/policies.py), and
their defaults are the settings' defaults."""

from __future__ import annotations

import dataclasses

from server.policies import (
    Policies,
    feed_policy,
    grab_policy,
    journey_policy,
    review_policy,
    risk_policy,
    sender_policy,
)
from server.settings import Settings
from services.campaigns import Policy as ReviewPolicy
from services.feed import FeedPolicy
from services.forms import RiskPolicy
from services.journey import JourneyPolicy
from services.notify import SenderPolicy
from services.stock import GrabPolicy


def test_default_settings_make_the_default_policies():
    settings = Settings.from_env({})
    assert feed_policy(settings) == FeedPolicy()
    assert journey_policy(settings) == JourneyPolicy()
    assert grab_policy(settings) == GrabPolicy()
    # A claim is stale after 10 × the longest send (5 s × 3 tries), at least 120 s.
    assert sender_policy(settings) == dataclasses.replace(SenderPolicy(), stale_after_seconds=150.0)
    assert review_policy(settings) == ReviewPolicy(review_levels=1, copy_edits_skip_review=True)
    assert risk_policy(settings) == RiskPolicy()
    assert Policies.of(settings) == Policies(grab=GrabPolicy(), review=review_policy(settings), risk=RiskPolicy())
    odd = Settings.from_env({"RISK_REFUSE_RANK": "5", "RISK_CACHE_SECONDS": "7", "RISK_WHEN_UNRANKED": "refuse"})
    assert risk_policy(odd) == RiskPolicy(refuse_at=5, cache_seconds=7, when_unranked="refuse")


WEIGHTS = ("audience", "interest", "behaviour", "store", "distance", "ending", "popularity", "joined")


def test_every_feed_knob_comes_from_its_setting():
    """Each FeedPolicy field has its FEED_WEIGHT_x or FEED_x variable: set them all to odd
    values and every one arrives."""
    env: dict[str, str] = {}
    expected: dict[str, object] = {}
    for number, f in enumerate(dataclasses.fields(FeedPolicy), start=7):
        name = f"FEED_WEIGHT_{f.name.upper()}" if f.name in WEIGHTS else f"FEED_{f.name.upper()}"
        env[name] = str(number)
        expected[f.name] = type(f.default)(number)
    policy = feed_policy(Settings.from_env(env))
    assert dataclasses.asdict(policy) == expected


def test_other_policies_follow_their_settings():
    settings = Settings.from_env(
        {
            "GRAB_USER_MAX": "3", "GRAB_USER_WINDOW_MS": "500", "REVIEW_LEVELS": "2",
            "COPY_EDITS_SKIP_REVIEW": "false", "POINTS_PER_YUAN": "4", "INTEGRATION_MAX_SKEW": "20",
            "NOTIFY_RATE_LIMIT": "9", "NOTIFY_RATE_WINDOW_SECONDS": "8", "NOTIFY_MAX_ATTEMPTS": "7",
            "NOTIFY_RETRY_SECONDS": "6.5", "NOTIFY_UTC_OFFSET_MINUTES": "-60", "NOTIFY_BATCH": "5",
            "WECHAT_TIMEOUT": "20", "WECHAT_MAX_RETRIES": "1",
        }
    )  # fmt: skip
    assert grab_policy(settings) == GrabPolicy(max_per_window=3, window_ms=500)
    assert review_policy(settings) == ReviewPolicy(review_levels=2, copy_edits_skip_review=False)
    journey = journey_policy(settings)
    assert (journey.points_per_yuan, journey.integration_max_skew) == (4, 20)
    assert sender_policy(settings) == SenderPolicy(
        rate_limit=9, rate_window_seconds=8, max_attempts=7, retry_seconds=6.5, utc_offset_minutes=-60, batch=5,
        stale_after_seconds=400.0,  # 10 × the longest send: 20 s × 2 tries
    )  # fmt: skip
