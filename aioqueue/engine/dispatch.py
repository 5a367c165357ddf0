"""The dispatcher: claims due jobs for free workers and sleeps until the next is due.

It never polls: it sleeps until the earliest ``scheduled_at`` it knows of, and is woken
early when a job is queued with an earlier one, or when a worker or a process's
concurrency slot comes free.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from ..errors import Unavailable
from ..models import Job, now_ms
from ..store import JobStore
from .batch import Arrivals
from .registry import Registry

log = logging.getLogger(__name__)


class Dispatching:
    """Mixed into ``Engine``: the dispatcher's side of the queue."""

    store: JobStore
    registry: Registry
    accepting: bool
    _free: int
    _wake: asyncio.Event
    #: when the earliest queued job is due (None: nothing queued)
    _next_due_ms: int | None
    #: the earliest job queued since the running claim began
    _noted_ms: int | None
    _busy: Counter[str]
    _full: set[str]
    _arrivals: Arrivals

    # provided by Engine: hand a claimed job to a worker, tell listeners of a change
    _launch: Callable[[Job], None]
    _changed: Callable[[Job], None]

    def _note_queued(self, scheduled_at_ms: int) -> None:
        """Wake the dispatcher only when this job moves its next deadline earlier."""
        if self._noted_ms is None or scheduled_at_ms < self._noted_ms:
            self._noted_ms = scheduled_at_ms
        if self._next_due_ms is None or scheduled_at_ms < self._next_due_ms:
            self._next_due_ms = scheduled_at_ms
            self._wake.set()
        self._arrivals.notify()

    async def _dispatch(self) -> None:
        while self.accepting:
            self._wake.clear()
            # claim only when something may be due: a wake that just moved a future
            # deadline costs no commit
            if self._free > 0 and self._next_due_ms is not None and self._next_due_ms <= now_ms():
                try:
                    await self._claim()
                except Unavailable:
                    log.exception("claim failed; retrying in 1 s")
                    await asyncio.sleep(1)
                    continue
            timeout = None
            if self._free > 0 and self._next_due_ms is not None:
                timeout = max(0.0, (self._next_due_ms - now_ms()) / 1000)
                if timeout == 0:
                    continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _claim(self) -> None:
        wanted = self._free
        now = now_ms()
        self._noted_ms = None
        jobs = await self.store.claim(wanted, now, self.registry.caps(self._busy, wanted))
        for job in jobs:
            self._free -= 1
            self._launch(job)
            self._changed(job)
        caps = self.registry.caps(self._busy, wanted)
        self._full = set() if caps is None else {n for n, cap in caps.items() if cap <= 0}
        if len(jobs) == wanted:
            self._next_due_ms = now
            return
        due = await self.store.next_due_ms(
            None if caps is None else [n for n, cap in caps.items() if cap > 0])
        # a job queued while we claimed and read may be missing from what we read
        noted = self._noted_ms
        self._next_due_ms = due if noted is None else noted if due is None else min(due, noted)
