"""Dependencies: jobs that wait for other jobs, released or failed by their parents' end.

The store does the work in the commit that ends a parent (``JobStore.insert``'s contract):
a child whose last parent succeeded becomes claimable, and a child of a failed parent ends
``failure``/``dependency_failed``, down the whole chain. Nothing polls. This collaborator
only tells the others afterwards: the dispatcher that children may be due, and the
observers (waiters, events, metrics, the backlog) that cascaded children have ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import orjson

from ..errors import UnknownParents
from ..models import Job, JobState, now_ms
from ..store import JobStore
from .observer import JobObserver, Observers

log = logging.getLogger(__name__)

#: the most parents one job may name
MAX_PARENTS = 100
#: the most children one parent's end is followed for at once
_PAGE = 100_000


class Dependents(JobObserver):
    """Remembers which jobs have waiting children, and follows their ends."""

    def __init__(self, store: JobStore, observers: Observers,
                 note_queued: Callable[[int], None]) -> None:
        self.store = store
        self.observers = observers
        self.note_queued = note_queued
        self.parents: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Learn the parents of children that wait (after a restart)."""
        self.parents = set(await self.store.waiting_parents())

    async def check(self, ids: Collection[str], owner: str | None) -> None:
        """Every parent must be a job ``owner`` may see (None: any): else ``UnknownParents``
        naming those that are not."""
        unknown = [i for i in ids if await self.store.get(i, owner=owner) is None]
        if unknown:
            raise UnknownParents(f"unknown parent jobs: {', '.join(unknown)}",
                                 details={"unknown": unknown})

    def expect(self, parents: Collection[str]) -> None:
        """A job waiting for ``parents`` is about to be stored: follow their ends (before
        the insert, so that no end is missed)."""
        self.parents.update(parents)

    async def results(self, job: Job) -> dict[str, object]:
        """Each parent's result, for ``ctx.parents`` (a parent purged meanwhile: None)."""
        parents = {}
        for parent_id in job.depends_on:
            parent = await self.store.get(parent_id)
            raw = parent.result if parent is not None else None
            parents[parent_id] = None if raw is None else orjson.loads(raw)
        return parents

    def follows(self, job_id: str) -> bool:
        """Observer: a parent's end elsewhere may release children queued here."""
        return job_id in self.parents

    def job_ended(self, job: Job) -> None:
        """Observer: a job ended; if children wait for it, see what its end did to them."""
        if job.id in self.parents:
            self.parents.discard(job.id)
            task = asyncio.ensure_future(self._follow(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _follow(self, parent: Job) -> None:
        try:
            released = await self._children_of(parent)
        except Exception:
            log.exception("job %s: its children could not be read", parent.id)
            released = True
        if released:
            self.note_queued(now_ms())

    async def _children_of(self, parent: Job) -> bool:
        """Tell the observers of every child the parent's failure ended (and theirs, down
        the chain); True if some child is still queued (it may just have been released)."""
        released = False
        pending = [parent.id]
        while pending:
            parent_id = pending.pop()
            for _, child in await self.store.list_jobs(depends_on=parent_id, limit=_PAGE):
                if child.state is JobState.QUEUED:
                    released = True
                elif child.state is JobState.FAILURE and _failed_by(child, parent_id):
                    self.parents.discard(child.id)
                    self.observers.ended(child)
                    pending.append(child.id)
        return released


def _failed_by(child: Job, parent_id: str) -> bool:
    """Whether ``child`` ended because ``parent_id`` failed (each cascade is told once)."""
    if child.error is None:
        return False
    error = orjson.loads(child.error)
    return (error.get("code") == "dependency_failed"
            and (error.get("details") or {}).get("parent") == parent_id)
