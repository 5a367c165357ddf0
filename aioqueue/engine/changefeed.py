"""Following the change log: what makes event ids resumable, and streams whole without NOTIFY.

Changes reach the observers (and so the event streams) at once on their own paths: this
server's after its commits, other servers' through their notices. This feed reads the
store's change log behind them, from where it last stood: a change whose notice was lost
is told now, as the job stands, and every change told before the new cursor lets the
observers (the hub) hand that cursor to readers as their event id.

It reads ``catch_up_s`` after a change while someone follows (``readers``), and on every
heartbeat sweep (``StoreListener.sweep``) regardless, so a lost notice delays a stream by
one sweep at most. Jobs told already, in the same state, attempt and progress, are not
told again; nor is the stored progress of a job running here, since its handler's
reports reach the observers before they are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import Unavailable
from ..models import Job
from ..store import JobStore, StoreListener
from .observer import JobObserver, Observers

log = logging.getLogger(__name__)

#: jobs whose last told version is remembered (older ones may be told twice, never missed)
_SEEN_MAX = 65536


def _version(job: Job) -> tuple:
    return job.state, job.attempts, job.progress


class ChangeFeed(JobObserver):
    """Reads the change log after each burst of changes and tells what was missed."""

    def __init__(self, store: JobStore, observers: Observers, running: Mapping[str, Any], *,
                 catch_up_s: float = 0.25, max_jobs: int = 10000) -> None:
        self.store = store
        self.observers = observers
        self.running = running
        self.catch_up_s = catch_up_s
        self.max_jobs = max_jobs
        #: how many follow the changes (the event streams); none: read on sweeps only
        self.readers: Callable[[], int] = lambda: 0
        #: where the log stood at the last read; None until the first
        self.cursor: str | None = None
        self._seen: OrderedDict[str, tuple] = OrderedDict()
        self._wake = asyncio.Event()
        self._now = False
        self._telling = False
        self._task: asyncio.Task | None = None
        #: subscribe it to the store: the heartbeat's sweeps read the log at once
        self.listener = _Sweeps(self)

    def start(self) -> None:
        """Read where the log stands, then follow it in the background."""
        self._task = asyncio.create_task(self._loop(), name="aioqueue-change-feed")
        self.sweep()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---------------------------------------------------------------- what wakes it

    def job_changed(self, job: Job) -> None:
        """Observer: remember the version told; read the log soon if someone follows."""
        self._seen[job.id] = _version(job)
        self._seen.move_to_end(job.id)
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        if not self._telling and self.readers():
            self._wake.set()

    def sweep(self) -> None:
        """The heartbeat's safety net (and the start): read the log now."""
        self._now = True
        self._wake.set()

    # ---------------------------------------------------------------- reading

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            if not self._now:
                await asyncio.sleep(self.catch_up_s)  # let a burst of changes gather
            self._wake.clear()
            self._now = False
            try:
                await self.catch_up()
            except Unavailable:
                log.warning("change log: the store is unavailable; reading it again later")
            except Exception:  # a bug here must not end the feed: the next read may do
                log.exception("change log: reading it failed")

    async def catch_up(self) -> None:
        """Read the log after the cursor, tell what was missed, move the cursor on."""
        since_ns = time.monotonic_ns()
        page = await self.store.changes_since(self.cursor, limit=self.max_jobs)
        if self.cursor is not None and not page.complete:
            log.warning("change log: more than %d jobs changed between two reads; "
                        "event streams start over", self.max_jobs)
            self.observers.changes_lost()
        self._telling = True
        try:
            for job in page.jobs:
                told = self._seen.get(job.id)
                if told == _version(job) or (
                        told is not None and job.id in self.running and told[:2] == (
                            job.state, job.attempts)):
                    continue
                if job.terminal:
                    self.observers.ended(job)
                else:
                    self.observers.changed(job)
        finally:
            self._telling = False
        self.cursor = page.cursor
        self.observers.changes_read(page.cursor, since_ns)


class _Sweeps(StoreListener):
    """The feed's ear for the store's heartbeat."""

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed

    def sweep(self) -> None:
        self.feed.sweep()
