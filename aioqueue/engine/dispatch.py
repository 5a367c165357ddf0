"""The dispatcher: claims due jobs for free workers (and a few ahead, ``pool.ClaimAhead``)
and sleeps until the next is due.

It never polls: it sleeps until the earliest ``scheduled_at`` it knows of, and is woken
early when a job is queued with an earlier one, or when a worker or a process's
concurrency slot comes free. A process at its concurrency limit is left out of the claim
(the store counts nothing: the pool knows how many of its jobs run).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import Unavailable
from ..models import now_ms
from ..store import JobStore
from .arrivals import Arrivals
from .health import WriteHealth
from .observer import Observers
from .pool import WorkerPool
from .registry import Registry

log = logging.getLogger(__name__)


class Dispatcher:
    """Fills the pool's free slots from the queue, in priority then time order."""

    def __init__(self, store: JobStore, registry: Registry, pool: WorkerPool,
                 observers: Observers, arrivals: Arrivals, health: WriteHealth) -> None:
        self.store = store
        self.registry = registry
        self.pool = pool
        self.observers = observers
        self.arrivals = arrivals
        self.health = health
        #: when the earliest queued job is due (None: nothing queued)
        self.next_due_ms: int | None = None
        self._noted_ms: int | None = None  # the earliest job queued since the claim began
        self._full: set[str] = set()  # processes the last claim left out, at their limit
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        pool.listener = self

    async def start(self) -> None:
        """Learn when the first queued job is due, then start claiming."""
        self.next_due_ms = await self.store.next_due_ms()
        self._task = asyncio.create_task(self._loop(), name="aioqueue-dispatcher")

    async def stop(self) -> None:
        """Claim nothing more; returns once a claim under way is done."""
        task, self._task = self._task, None
        self._wake.set()
        if task is not None:
            await task

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    def idle_now(self, now: int) -> bool:
        """Whether nothing queued is due at ``now``: a new job may then skip the queue."""
        return self.next_due_ms is None or self.next_due_ms > now

    def note_queued(self, scheduled_at_ms: int) -> None:
        """A job was queued for this time: wake only when that moves the deadline earlier."""
        if self._noted_ms is None or scheduled_at_ms < self._noted_ms:
            self._noted_ms = scheduled_at_ms
        if self.next_due_ms is None or scheduled_at_ms < self.next_due_ms:
            self.next_due_ms = scheduled_at_ms
            self._wake.set()
        self.arrivals.notify()

    # ---------------------------------------------------------------- the pool's news

    def slot_freed(self, process: str) -> None:
        if self.next_due_ms is not None or process in self._full:
            self._wake.set()

    def process_freed(self, process: str) -> None:
        if process in self._full:  # below its concurrency limit: its jobs may be due
            self.note_queued(now_ms())

    # ---------------------------------------------------------------- the loop

    async def _loop(self) -> None:
        while self._task is not None:
            self._wake.clear()
            # claim only when something may be due: a wake that just moved a future
            # deadline costs no commit
            if self.pool.room > 0 and self.next_due_ms is not None \
                    and self.next_due_ms <= now_ms():
                try:
                    await self._claim()
                except Unavailable:
                    self.health.failed()
                    log.warning("claim failed; retrying in 1 s")
                    await asyncio.sleep(1)
                    continue
                self.health.succeeded()
            timeout = None
            if self.pool.room > 0 and self.next_due_ms is not None:
                timeout = max(0.0, (self.next_due_ms - now_ms()) / 1000)
                if timeout == 0:
                    continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _claim(self) -> None:
        wanted = self.pool.room
        now = now_ms()
        self._noted_ms = None
        timing = self.pool.timing
        began = time.monotonic() if timing else 0.0
        jobs = await self.store.claim(wanted, now, self.registry.caps(self.pool.busy, wanted))
        if timing:
            self.pool.ahead.claimed(time.monotonic() - began)
        self.pool.claimed(jobs)
        for job in jobs:
            self.observers.changed(job)
        caps = self.registry.caps(self.pool.busy, wanted)
        self._full = set() if caps is None else {n for n, cap in caps.items() if cap <= 0}
        if len(jobs) == wanted:
            self.next_due_ms = now
            return
        due = await self.store.next_due_ms(
            None if caps is None else [n for n, cap in caps.items() if cap > 0])
        # a job queued while we claimed and read may be missing from what we read
        noted = self._noted_ms
        self.next_due_ms = due if noted is None else noted if due is None else min(due, noted)
