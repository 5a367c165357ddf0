"""The bound on unfinished jobs, counted in memory so a submission never costs a COUNT(*).

The count starts from the store when the engine starts, then follows every job: a
submission reserves its place before its insert (so concurrent ones cannot overshoot),
the commit confirms it or the failure gives it back, and a job's terminal write frees it.
Should the count ever drift upward it would refuse work for ever, so while it says the
backlog is full it is read again from the store, at most once per ``recount_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..errors import Overloaded


class Backlog:
    """How many jobs are queued, running or paused, and whether one more may come."""

    def __init__(
        self, limit: int, retry_after_s: float, count: Callable[[], Awaitable[int]], *,
        recount_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self._count = count
        self._recount_s = recount_s
        self._clock = clock
        self._stored = 0
        self._reserved = 0
        self._counted_s: float | None = None

    @property
    def size(self) -> int:
        """Unfinished jobs, including submissions not committed yet."""
        return self._stored + self._reserved

    async def start(self) -> None:
        """Take the count from the store (once, at start)."""
        await self._recount()

    async def reserve(self, count: int = 1) -> None:
        """Make room for ``count`` new jobs, or raise ``Overloaded``."""
        if self.size + count > self.limit and self._stale():
            await self._recount()
        if self.size + count > self.limit:
            raise Overloaded(
                f"the server holds {self.limit} unfinished jobs, its limit; try again later",
                retry_after_s=self.retry_after_s, details={"limit": "backlog"},
            )
        self._reserved += count

    def follow(self, commit: asyncio.Future, count: int = 1) -> None:
        """Confirm ``count`` reserved places once ``commit`` succeeds, free them if it fails."""

        def settled(future: asyncio.Future) -> None:
            if future.cancelled() or future.exception() is not None:
                self.release(count)
            else:
                self.stored(count)

        commit.add_done_callback(settled)

    def stored(self, count: int = 1) -> None:
        """The reserved jobs are committed."""
        self._reserved -= count
        self._stored += count

    def release(self, count: int = 1) -> None:
        """The reserved jobs were not stored after all."""
        self._reserved -= count

    def ended(self, count: int = 1) -> None:
        """Jobs reached a terminal state."""
        self._stored = max(0, self._stored - count)

    def _stale(self) -> bool:
        return self._counted_s is None or self._clock() - self._counted_s >= self._recount_s

    async def _recount(self) -> None:
        self._counted_s = self._clock()
        self._stored = await self._count()
