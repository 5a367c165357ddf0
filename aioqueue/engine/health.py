"""Whether the store takes writes, as the engine sees it; ``/health`` answers from here.

Every write the engine depends on (a submission, a claim, a job's end) reports here how it
went. From the first refused write until the next one that goes through the engine is
degraded: job ends are kept in memory and retried, and submissions are refused. While
degraded, ``check`` asks the store to commit a harmless write, so an idle server notices
by itself that the disk has room again.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import Unavailable
from ..models import now_ms
from ..store import JobStore

log = logging.getLogger(__name__)


class WriteHealth:
    """The store's write health: failing since when, and how many job ends wait in memory."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        #: when the first write of the current failure was refused (None: writes go through)
        self.failing_since_ms: int | None = None
        #: job ends the store refused and that are being retried
        self.pending_ends = 0
        self._probe: asyncio.Future | None = None

    @property
    def degraded(self) -> bool:
        return self.failing_since_ms is not None

    def failed(self) -> None:
        """A write was refused."""
        if self.failing_since_ms is None:
            self.failing_since_ms = now_ms()
            log.error("the store refuses writes: job ends are kept in memory and retried, "
                      "submissions are refused, /health answers 503 until it takes them")

    def succeeded(self) -> None:
        """A write went through."""
        if self.failing_since_ms is not None:
            log.warning("the store takes writes again, after %.1f s",
                        (now_ms() - self.failing_since_ms) / 1000)
            self.failing_since_ms = None

    async def check(self) -> bool:
        """Whether writes go through; while they do not, one probe write at a time (shared by
        concurrent callers) finds out whether they do again."""
        if not self.degraded:
            return True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._try_write())
        await asyncio.shield(self._probe)
        return not self.degraded

    async def _try_write(self) -> None:
        try:
            await self.store.probe_writes()
        except Unavailable:
            self.failed()
        else:
            self.succeeded()
