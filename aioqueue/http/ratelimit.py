"""Per-client submission rate: one token bucket per authenticated client.

Buckets are keyed by token name, so there are never more of them than configured tokens;
a caller with no valid token is refused before it reaches a bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    level: float
    updated_s: float


class RateLimiter:
    """``rate_per_s`` jobs a second on average, up to ``burst`` at once; rate 0 is no limit."""

    def __init__(self, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, count: int = 1) -> float:
        """Take ``count`` jobs from ``key``'s bucket: 0.0 if allowed, else seconds to wait.

        A request for more than the bucket holds costs a full bucket, so a large bulk is
        slowed down, not refused for ever. A refused request takes nothing.
        """
        if self.rate_per_s <= 0:
            return 0.0
        cost = min(count, self.burst)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.level = min(float(self.burst),
                           bucket.level + (now - bucket.updated_s) * self.rate_per_s)
        bucket.updated_s = now
        if bucket.level >= cost:
            bucket.level -= cost
            return 0.0
        return (cost - bucket.level) / self.rate_per_s
