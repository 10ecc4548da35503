"""A per-process token bucket per client address, for the grab endpoint.

Per process on purpose: it costs no Redis round trip on the hot path, and N processes
behind a proxy give one address at most N times the rate, which still stops a flood.
The per-customer limit, which matters more, is enforced across processes in Redis.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class IpLimiter:
    rate: float  # tokens per second
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # address -> (tokens, updated)

    def take(self, address: str, now: float | None = None) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is free."""
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= 1:
            self._buckets[address] = (tokens - 1, now)
            if len(self._buckets) > 100_000:
                self._forget_full(now)
            return 0.0
        self._buckets[address] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those to bound memory.
        horizon = self.burst / self.rate
        self._buckets = {a: (t, u) for a, (t, u) in self._buckets.items() if now - u < horizon}


def retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))
