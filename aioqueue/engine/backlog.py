"""The bound on unfinished jobs, counted in memory so a submission never costs a COUNT(*).

The count is read from the store when the engine starts, then follows every job:
a submission reserves its place before its insert (so concurrent ones cannot overshoot),
the commit confirms it (the engine reports each stored job to its observers, this among
them) or its failure gives it back, and a job's end frees it. Should the count ever drift
upward it would refuse work for ever, so while it says the backlog is full it is read
again from the store, at most once per ``recount_s``.

Servers sharing one database (PostgreSQL) each count what they see; the store's heartbeat
(``StoreListener.sweep``) has each read the database's count again, so the limit holds
for the cluster within a heartbeat, at one index-only COUNT per server per heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from ..config import LimitSettings
from ..errors import Overloaded, Unavailable
from ..models import Job
from ..store import StoreListener
from .observer import JobObserver


class Backlog(JobObserver, StoreListener):
    """How many jobs are queued, running or paused, and whether more may come."""

    def __init__(
        self, limits: LimitSettings, count: Callable[[], Awaitable[int]], *,
        recount_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limits.max_backlog
        self.retry_after_s = limits.backlog_retry_after_s
        self._count = count
        self._recount_s = recount_s
        self._clock = clock
        self._stored = 0
        self._reserved = 0
        self._counted_s: float | None = None
        self._sweeping: asyncio.Future | None = None

    @property
    def size(self) -> int:
        """Unfinished jobs, including submissions not committed yet."""
        return self._stored + self._reserved

    async def start(self) -> None:
        """Take the count from the store (once, when the engine starts)."""
        await self._recount()

    async def reserve(self, count: int = 1, *, force: bool = False) -> None:
        """Make room for ``count`` new jobs, or raise ``Overloaded``; with ``force`` (the
        server's own jobs: a schedule's firing) the place is taken even past the limit."""
        if force:
            self._reserved += count
            return
        if self.size + count > self.limit and (
            self._counted_s is None or self._clock() - self._counted_s >= self._recount_s
        ):
            await self._recount()
        if self.size + count > self.limit:
            raise Overloaded(
                f"the server holds {self.limit} unfinished jobs, its limit; try again later",
                retry_after_s=self.retry_after_s, details={"limit": "backlog"},
            )
        self._reserved += count

    async def insert(self, count: int, insert: Callable[[], Awaitable[None]]) -> None:
        """Run ``insert`` for ``count`` reserved jobs; their places are freed if it fails."""
        try:
            await insert()
        except BaseException:
            self.release(count)
            raise

    async def admit(self, count: int, insert: Callable[[], Awaitable[None]]) -> None:
        """Reserve ``count`` places, then ``insert`` the jobs (see ``reserve``, ``insert``)."""
        await self.reserve(count)
        await self.insert(count, insert)

    def release(self, count: int = 1) -> None:
        """Reserved jobs were not stored after all."""
        self._reserved -= count

    def job_submitted(self, job: Job) -> None:
        """Observer: a reserved job is committed."""
        self._reserved -= 1
        self._stored += 1

    def job_ended(self, job: Job) -> None:
        """Observer: a job reached a terminal state."""
        self._stored = max(0, self._stored - 1)

    def follows(self, job_id: str) -> bool:
        """Observer: while the count refuses work, ends elsewhere must lower it at once."""
        return self.size >= self.limit

    def sweep(self) -> None:
        """Another server may have queued or ended jobs: count them in the store again."""
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.ensure_future(self._quiet_recount())

    async def _quiet_recount(self) -> None:
        with contextlib.suppress(Unavailable):
            await self._recount()

    async def _recount(self) -> None:
        self._counted_s = self._clock()
        self._stored = await self._count()
