"""A customer's part in a campaign: joining, progress, rewards, points and exchanging
points for coupons.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.core import SeatKeys
from services.journey import points
from services.journey.exchange import exchange_ref
from services.journey.participation import (
    Journey,
    JourneyPolicy,
    ProgressView,
    join,
    join_refusal,
    phase_refusal,
    visible_snapshot,
)
from services.journey.rewards import RewardIssuer, claw_back, grant_in_transaction, issue_pending_forever

__all__ = [
    "Journey",
    "JourneyPolicy",
    "ProgressView",
    "RewardIssuer",
    "SeatKeys",
    "claw_back",
    "exchange_ref",
    "grant_in_transaction",
    "issue_pending_forever",
    "join",
    "join_refusal",
    "phase_refusal",
    "points",
    "visible_snapshot",
]
