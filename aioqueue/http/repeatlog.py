"""Log lines for events a client can make happen thousands of times a second.

A flood of bad connections must not become a flood of log lines (asyncio once wrote 30 MB
of ``accept()`` errors in 20 s): each kind of event is logged at most once per interval,
with how often it happened since its last line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class RepeatLog:
    """At most one line per kind of event per ``interval_s``, counting the ones left out."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def note(self, logger: logging.Logger, kind: str, level: int, message: str,
             *args: Any) -> bool:
        """Count one ``kind`` event; log it if its interval has passed. True if logged."""
        count = self._counts.get(kind, 0) + 1
        now = self._clock()
        if now < self._next.get(kind, float("-inf")):
            self._counts[kind] = count
            return False
        self._counts[kind] = 0
        self._next[kind] = now + self.interval_s
        if count > 1:
            message += f" ({count} times since the last such line)"
        logger.log(level, message, *args)
        return True
