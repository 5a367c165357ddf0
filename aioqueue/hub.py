"""In-process fan-out of job changes to live readers (the Server-Sent Events streams).

The engine calls ``Hub.publish(job)`` after each change of state or progress; the hub hands
the change to every subscription that wants it and never waits for a reader. Each
subscription keeps at most one pending change per job (a newer one replaces the older,
since a reader only needs the latest view of a job), so a per-job reader holds at most one
job in memory. A reader of all jobs that falls behind by more than ``max_pending`` distinct
jobs is disconnected ("lagged") rather than allowed to grow without bound.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from .engine.observer import JobObserver
from .models import Job, now_ms


@dataclass(frozen=True, slots=True)
class Change:
    """One published change: the job as it now stands and its place in this server's run."""

    seq: int
    job: Job


class Subscription:
    """What one reader receives; iterate with ``await next_change()`` until it returns None."""

    def __init__(self, hub: Hub, job_id: str | None, owner: str | None, max_pending: int) -> None:
        self.job_id = job_id
        self.owner = owner
        #: why the subscription ended: "lagged" (too slow) or "closed" (server stopping)
        self.end_reason: str | None = None
        self._hub = hub
        self._max_pending = max_pending
        self._pending: dict[str, Change] = {}
        self._ready = asyncio.Event()

    def wants(self, job: Job) -> bool:
        """True for the subscription's job, or for any job the owner may see."""
        if self.job_id is not None:
            return job.id == self.job_id
        return self.owner is None or job.owner == self.owner

    def offer(self, change: Change) -> None:
        """Keep ``change`` as the job's latest pending change; never blocks."""
        if self.end_reason is not None:
            return
        self._pending.pop(change.job.id, None)
        self._pending[change.job.id] = change
        if len(self._pending) > self._max_pending:
            self.end("lagged")
        self._ready.set()

    def end(self, reason: str) -> None:
        """Stop the subscription; pending changes are dropped and the reader is woken."""
        if self.end_reason is None:
            self.end_reason = reason
            self._pending.clear()
            self._hub._remove(self)
        self._ready.set()

    async def next_change(self, timeout_s: float | None = None) -> Change | None:
        """The oldest pending change; None once ended. Raises ``TimeoutError`` when idle."""
        while not self._pending:
            if self.end_reason is not None:
                return None
            self._ready.clear()
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        if self.end_reason is not None:
            return None
        key = next(iter(self._pending))
        return self._pending.pop(key)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end("closed")


class Hub(JobObserver):
    """Subscriptions by job and for all jobs; a plain callable the engine can call."""

    def __init__(self, max_pending: int = 10000) -> None:
        #: identifies this run of the server in event ids, so ids of an earlier run never match
        self.boot = format(now_ms(), "x")
        self._max_pending = max_pending
        self._seq = itertools.count(1)
        self._last: dict[str, int] = {}
        self._by_job: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()

    def job_changed(self, job: Job) -> None:
        """The engine's hook: publish every change."""
        self.publish(job)

    def publish(self, job: Job) -> None:
        """Hand a change of ``job`` to every interested reader."""
        change = Change(next(self._seq), job)
        if job.terminal:
            self._last.pop(job.id, None)
        else:
            self._last[job.id] = change.seq
        for sub in tuple(self._by_job.get(job.id, ())):
            sub.offer(change)
        for sub in tuple(self._all):
            if sub.wants(job):
                sub.offer(change)

    def last_seq(self, job_id: str) -> int:
        """The seq of the latest change published for an active job in this run, else 0."""
        return self._last.get(job_id, 0)

    def subscribe(self, *, job_id: str | None = None, owner: str | None = None) -> Subscription:
        """Follow one job (``job_id``) or every job ``owner`` may see (None: all jobs)."""
        sub = Subscription(self, job_id, owner, 1 if job_id is not None else self._max_pending)
        if job_id is not None:
            self._by_job.setdefault(job_id, set()).add(sub)
        else:
            self._all.add(sub)
        return sub

    def close(self) -> None:
        """End every subscription, so streams finish when the server stops."""
        for sub in [*self._all, *(s for subs in self._by_job.values() for s in subs)]:
            sub.end("closed")

    @property
    def subscribers(self) -> int:
        """How many readers are connected (for health and metrics)."""
        return len(self._all) + sum(len(s) for s in self._by_job.values())

    def _remove(self, sub: Subscription) -> None:
        if sub.job_id is None:
            self._all.discard(sub)
            return
        subs = self._by_job.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_job[sub.job_id]
