"""The personalised discovery feed: the per-process index (index.py), audience
membership (audience_sets.py), the viewer (viewer.py), scoring, ranking and sections
(scoring.py), live seats of the capped campaigns shown (seats.py), the runtime that
ties them (runtime.py), the cached rankings (rankings.py), reloaded on catalog changes
(catalog_changes.py).

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.feed.audience_sets import INLINE_AUDIENCE_BUILDS, set_member
from services.feed.catalog_changes import campaign_changed, catalog_changed, catalog_version
from services.feed.index import FeedIndex, build_index, distance_km
from services.feed.policy import FeedPolicy
from services.feed.presentation import decode_offset, encode_offset, texts_of
from services.feed.rankings import RankingCache, viewer_changed
from services.feed.runtime import Feed
from services.feed.scoring import (
    Ranked,
    Ranking,
    Scored,
    Sections,
    budget_spent_reason,
    full_reason,
    rank_one,
    score,
    score_rows,
)
from services.feed.seats import Live, budgets_spent, live_limits
from services.feed.viewer import Viewer

__all__ = [
    "INLINE_AUDIENCE_BUILDS",
    "Feed",
    "FeedIndex",
    "FeedPolicy",
    "Live",
    "Ranked",
    "Ranking",
    "RankingCache",
    "Scored",
    "Sections",
    "Viewer",
    "budget_spent_reason",
    "budgets_spent",
    "build_index",
    "campaign_changed",
    "catalog_changed",
    "catalog_version",
    "decode_offset",
    "distance_km",
    "encode_offset",
    "full_reason",
    "live_limits",
    "rank_one",
    "score",
    "score_rows",
    "set_member",
    "texts_of",
    "viewer_changed",
]
