"""The retry policy: how long to wait before the next try, for jobs and for notices alike."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``base_s``, capped at ``max_s``, with +-50% jitter so that
    many failures at once do not come back at once."""

    base_s: float
    max_s: float

    def delay_s(self, attempts: int) -> float:
        """The wait before the try that follows ``attempts`` failed ones (1 or more)."""
        base = min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.5, 1.5)

    def delay_ms(self, attempts: int) -> int:
        """``delay_s`` in whole milliseconds, as the store's times are."""
        return round(self.delay_s(attempts) * 1000)
