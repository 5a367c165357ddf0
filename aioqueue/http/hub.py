"""In-process fan-out of job changes to live readers (the Server-Sent Events streams).

The engine calls ``Hub.publish(job)`` after each change of state or progress; the hub hands
the change to every subscription that wants it and never waits for a reader. A change is
encoded once, on first use, and the same bytes go to every stream. Each subscription keeps
at most one pending change per job (a newer one replaces the older, since a reader only
needs the latest view of a job), so a per-job reader holds at most one job in memory.

What a reader that falls behind may hold is bounded three ways; past any of them it is
disconnected ("lagged") rather than allowed to grow: ``max_pending`` distinct jobs,
``max_pending_bytes`` of encoded changes, and, for all readers together, ``budget_bytes``
of changes still waiting for any reader (a change shared by many readers counts once; when
the budget is exceeded, the reader holding the most bytes goes first).

Each subscription also holds its event id: the change-log cursor up to which it has been
sent every change. It starts where the stream read the log on opening, and moves on when
the engine's change feed has read the log further (``changes_read``) and told every change
before the new cursor, but only for a subscription whose own start was read before that
read began (so every change after its start reached it, live or through the feed).
"""

from __future__ import annotations

import asyncio
import itertools
import time

from ..engine.observer import JobObserver
from ..models import Job
from .rendered import render


class Change:
    """One published change: the job as it now stands and its place in this server's run."""

    __slots__ = ("seq", "job", "_frame", "_size", "_holders")

    def __init__(self, seq: int, job: Job) -> None:
        self.seq = seq
        self.job = job
        self._frame: tuple[str, bytes] | None = None
        self._size = 0
        #: subscriptions holding this change as pending (for the hub's byte budget)
        self._holders = 0

    def frame(self, base_path: str = "/async-process/") -> bytes:
        """The whole ``event: job`` of this change, encoded once for every stream (the
        stream adds its event id)."""
        if self._frame is None or self._frame[0] != base_path:
            self._frame = (base_path, job_frame(self.job, base_path))
            self._size = self._size or len(self._frame[1])
        return self._frame[1]

    @property
    def size(self) -> int:
        """Bytes this change holds once encoded (fixed at the first encoding, so the
        budget's sums add and subtract the same amount)."""
        if not self._size:
            self.frame()
        return self._size


def job_frame(job: Job, base_path: str) -> bytes:
    """A job's ``event: job``, without an id."""
    return b"event: job\ndata: %s\n\n" % render(job, base_path)


class Subscription:
    """What one reader receives; iterate with ``await next_changes()`` until it returns []."""

    def __init__(self, hub: Hub, job_id: str | None, owner: str | None, max_pending: int) -> None:
        self.job_id = job_id
        self.owner = owner
        #: why the subscription ended: "lagged" (too slow) or "closed" (server stopping)
        self.end_reason: str | None = None
        #: bytes of the changes waiting for this reader
        self.pending_bytes = 0
        self._hub = hub
        self._max_pending = max_pending
        self._pending: dict[str, Change] = {}
        self._ready = asyncio.Event()
        #: the change-log cursor up to which this reader has every change: its event id
        self.cursor: str | None = None
        self._since_ns: int | None = None
        self._moved = False

    def start(self, cursor: str) -> None:
        """The stream read the log at ``cursor`` after subscribing: the reader has (or
        does not need) every change before it, and will be sent every one after."""
        self.cursor = cursor
        self._since_ns = time.monotonic_ns()

    def advance(self, cursor: str, since_ns: int) -> None:
        """The feed told every change up to ``cursor`` in a read begun at ``since_ns``."""
        if self._since_ns is None or self._since_ns >= since_ns or self.end_reason is not None:
            return
        self.cursor = cursor
        self._moved = True
        self._ready.set()

    def take_moved(self) -> bool:
        """Whether the cursor moved since the last call."""
        moved, self._moved = self._moved, False
        return moved

    def wants(self, job: Job) -> bool:
        """True for the subscription's job, or for any job the owner may see."""
        if self.job_id is not None:
            return job.id == self.job_id
        return self.owner is None or job.owner == self.owner

    def offer(self, change: Change) -> None:
        """Keep ``change`` as the job's latest pending change; never blocks."""
        if self.end_reason is not None:
            return
        self._release(self._pending.pop(change.job.id, None))
        self._pending[change.job.id] = change
        self.pending_bytes += change.size
        if change._holders == 0:
            self._hub.pending_bytes += change.size
        change._holders += 1
        # one change always fits, however large: the limits are on a backlog of them
        if len(self._pending) > 1 and (len(self._pending) > self._max_pending
                                       or self.pending_bytes > self._hub.max_pending_bytes):
            self.end("lagged")
        self._ready.set()

    def _release(self, change: Change | None) -> None:
        if change is None:
            return
        self.pending_bytes -= change.size
        change._holders -= 1
        if change._holders == 0:
            self._hub.pending_bytes -= change.size

    def end(self, reason: str) -> None:
        """Stop the subscription; pending changes are dropped and the reader is woken."""
        if self.end_reason is None:
            self.end_reason = reason
            for change in self._pending.values():
                self._release(change)
            self._pending.clear()
            self._hub._remove(self)
        self._ready.set()

    async def next_changes(self, timeout_s: float | None = None) -> list[Change]:
        """Every pending change, oldest first; [] once ended, or when only the cursor moved
        (``take_moved``). Raises ``TimeoutError`` when nothing comes within ``timeout_s``."""
        while not self._pending:
            if self.end_reason is not None or self._moved:
                return []
            self._ready.clear()
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        changes = list(self._pending.values())
        for change in changes:
            self._release(change)
        self._pending.clear()
        return changes

    async def next_change(self, timeout_s: float | None = None) -> Change | None:
        """The oldest pending change; None once ended. Raises ``TimeoutError`` when idle."""
        while not self._pending:
            if self.end_reason is not None:
                return None
            self._ready.clear()
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        change = self._pending.pop(next(iter(self._pending)))
        self._release(change)
        return change

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end("closed")


class Hub(JobObserver):
    """Subscriptions by job and for all jobs; a plain callable the engine can call."""

    def __init__(self, max_pending: int = 10000, *, max_pending_bytes: int = 4 << 20,
                 budget_bytes: int = 64 << 20) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.budget_bytes = budget_bytes
        #: bytes of the distinct changes some reader still waits for
        self.pending_bytes = 0
        self._max_pending = max_pending
        self._seq = itertools.count(1)
        self._by_job: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()

    def job_changed(self, job: Job) -> None:
        """The engine's hook: publish every change."""
        self.publish(job)

    def follows(self, job_id: str) -> bool:
        """A stream of all jobs may select any job (its filter needs the job's data)."""
        return bool(self._all) or job_id in self._by_job

    def publish(self, job: Job) -> None:
        """Hand a change of ``job`` to every interested reader (none: nothing is built)."""
        if not self._all and job.id not in self._by_job:
            return
        change = Change(next(self._seq), job)
        for sub in tuple(self._by_job.get(job.id, ())):
            sub.offer(change)
        for sub in tuple(self._all):
            if sub.wants(job):
                sub.offer(change)
        while self.pending_bytes > self.budget_bytes:
            self._heaviest().end("lagged")

    def _heaviest(self) -> Subscription:
        """The reader holding the most bytes: the slowest, shed first when over budget."""
        return max(self._every(), key=lambda sub: sub.pending_bytes)

    def changes_read(self, cursor: str, since_ns: int) -> None:
        """The engine's change feed read the log up to ``cursor``: move readers' ids on."""
        for sub in self._every():
            sub.advance(cursor, since_ns)

    def changes_lost(self) -> None:
        """Too many changes to tell each: every reader starts over (it reconnects)."""
        for sub in self._every():
            sub.end("lagged")

    def _every(self) -> list[Subscription]:
        return [*self._all, *(s for subs in self._by_job.values() for s in subs)]

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
        for sub in self._every():
            sub.end("closed")

    def followed(self) -> bool:
        """Whether any reader is connected: the change feed asks at every change, so this
        is two truth tests (a job's set leaves ``_by_job`` with its last reader)."""
        return bool(self._all or self._by_job)

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
