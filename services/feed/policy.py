"""The feed's weights and how its points are rounded: ``FeedPolicy`` (one setting per
ranking component, services/feed/scoring.py documents them) and ``r3``, which every
score component goes through, so the index (services/feed/index.py) and the scoring
round the same way.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class FeedPolicy:
    audience: float = 3.0
    interest: float = 2.0
    behaviour: float = 1.5
    store: float = 2.0
    distance: float = 2.0
    ending: float = 1.0
    popularity: float = 1.0
    joined: float = -2.0
    near_km: float = 5.0
    ending_soon_days: int = 3
    cache_seconds: float = 60.0
    audience_ttl: int = 300
    ranking_seconds: float = 10.0
    ranking_entries: int = 2000
    profile_seconds: float = 3600.0
    membership_seconds: float = 60.0

    @functools.cached_property
    def points(self) -> _Points:
        """The fixed points, rounded once (hashing a policy per card would cost more)."""
        return _points(self)


def r3(x: float) -> float:
    """Thousandths, half up. The vectorised scoring (``_r3`` in services/feed/scoring.py)
    does the very same IEEE operations, so a score computed for a whole index at once and
    the one ``rank_one`` explains are the same float (Python's ``round`` rounds the exact
    decimal, numpy's the scaled binary: they differ at ties)."""
    return math.floor(x * 1000.0 + 0.5) / 1000.0


@dataclass(frozen=True)
class _Points:
    """A policy's fixed points, rounded once (``r3``)."""

    audience: float
    interest: tuple[float, float, float]  # by tags liked: 0, 1, 2 or more
    behaviour: float
    store: float
    joined: float


def _points(policy: FeedPolicy) -> _Points:
    return _Points(
        r3(policy.audience), (0.0, r3(policy.interest * 1 / 2), r3(policy.interest * 2 / 2)), r3(policy.behaviour),
        r3(policy.store), r3(policy.joined),
    )  # fmt: skip
