"""What the numbers say: funnels, redemption reports and the view/click tracking
counters in Redis.

The names below are the package's public face: other packages, handlers and tests
import them from here; its modules import each other directly."""

from services.analytics.funnel import MAX_RANGE_DAYS

__all__ = [
    "MAX_RANGE_DAYS",
]
