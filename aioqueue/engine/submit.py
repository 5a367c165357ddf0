"""New jobs: checked, made room for, stored durably, handed to a worker or queued.

A job submitted while a worker is free and nothing older is due is stored directly as
``running`` and handed to that worker without waiting for a claim (a hand-off). A process
with a ``concurrency`` limit, a batch process, or a job for later always goes through the
queue, where the dispatcher's claim counts and collects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DuplicateJob, Unavailable
from ..models import Job, JobState, new_claim_token, new_job_id, now_ms
from ..store import JobStore
from .backlog import Backlog
from .bulk import bulk_jobs, dump_input
from .dispatch import Dispatcher
from .health import WriteHealth
from .observer import Observers
from .operations import JobControl, request_digest
from .pool import WorkerPool
from .registry import Process, Registry
from .waiters import Waiters


@dataclass(frozen=True)
class Request:
    """What a client asks for, beside the process and its input."""

    priority: int = 0
    delay_s: float = 0.0
    run_at_ms: int | None = None
    owner: str | None = None
    callback_url: str | None = None
    notify_email: str | None = None
    idempotency_key: str | None = None
    #: the jobs it waits for (checked by the engine before it comes here)
    depends_on: tuple[str, ...] = ()


class Submitter:
    """Stores new jobs and tells the pool, the dispatcher and the observers."""

    def __init__(self, store: JobStore, registry: Registry, backlog: Backlog,
                 pool: WorkerPool, dispatcher: Dispatcher, control: JobControl,
                 waiters: Waiters, observers: Observers, health: WriteHealth) -> None:
        self.store = store
        self.registry = registry
        self.backlog = backlog
        self.pool = pool
        self.dispatcher = dispatcher
        self.control = control
        self.waiters = waiters
        self.observers = observers
        self.health = health

    async def submit(self, process: str, data: Any, request: Request, *,
                     raw: bytes | None, wait_s: float) -> Job:
        """Store one job durably and return it, or its end if it comes within ``wait_s``."""
        proc = self.registry.get(process)
        proc.validate(data)
        request_hash = None
        if request.idempotency_key is not None:
            request_hash = request_digest(proc.name, data)
            first = await self.control.replayed(request.idempotency_key, request.owner,
                                                request_hash, wait_s)
            if first is not None:
                return first
        if raw is None:
            raw = dump_input(data)
        await self.backlog.reserve(1)
        job = self._new_job(proc, raw, request, request_hash)
        waiter = self.waiters.add(job.id) if wait_s > 0 else None
        try:
            try:
                await self._store(job)
            except DuplicateJob:  # the same key committed first, in this batch or before
                return await self._first_of_key(request, request_hash, wait_s)
            if waiter is None:
                return job
            ended = await self.waiters.wait(waiter, wait_s)
            return ended if ended is not None else (await self.store.get(job.id) or job)
        finally:
            if waiter is not None:
                self.waiters.drop(job.id, waiter)

    async def submit_bulk(self, process: str, items: Sequence[Any], request: Request
                          ) -> list[Job]:
        """Store many queued jobs of one process in one transaction; all or none."""
        jobs = bulk_jobs(self.registry.get(process), items, priority=request.priority,
                         owner=request.owner, callback_url=request.callback_url,
                         notify_email=request.notify_email)
        if jobs:
            await asyncio.shield(self._store_queued(jobs))
        return jobs

    def _new_job(self, proc: Process, raw: bytes, request: Request,
                 request_hash: str | None) -> Job:
        """The job to store: running (its worker slot reserved) when it can be handed off
        at once, else queued for its time."""
        now = now_ms()
        if request.run_at_ms is not None:
            scheduled = max(now, request.run_at_ms)
        else:
            scheduled = now + max(0, round(request.delay_s * 1000))
        handoff = (
            scheduled <= now
            and proc.batch_size == 1  # batch jobs wait in the table, where a batch collects them
            and proc.concurrency is None  # limited ones go through the claim, which counts
            and not request.depends_on  # a child waits in the table for its parents
            and self.dispatcher.idle_now(now)
            and self.pool.reserve()
        )
        return Job(
            id=new_job_id(), process=proc.name,
            state=JobState.RUNNING if handoff else JobState.QUEUED,
            input=raw, result=None, error=None, progress=None,
            attempts=1 if handoff else 0, max_attempts=proc.max_attempts,
            priority=request.priority, created_at_ms=now, scheduled_at_ms=scheduled,
            started_at_ms=now if handoff else None, ended_at_ms=None, owner=request.owner,
            callback_url=request.callback_url, notify_email=request.notify_email,
            idempotency_key=request.idempotency_key, request_hash=request_hash,
            claim=new_claim_token() if handoff else None,
            depends_on=request.depends_on,
        )

    def _store(self, job: Job) -> asyncio.Future:
        """Insert ``job``; once committed, hand it to its worker or tell the dispatcher.

        The follow-up is the insert's done callback, not a Task of its own: it runs whether
        or not the caller still waits. The caller awaits a future of its own, answered by
        that callback, so a caller that goes away cancels neither the insert nor the
        follow-up (what ``asyncio.shield`` would do, with one future and one callback less).
        """
        try:
            stored = self.store.insert_soon([job])
        except BaseException as exc:
            self._not_stored(job, exc)
            raise
        answer = stored.get_loop().create_future()
        stored.add_done_callback(lambda _: self._stored(job, stored, answer))
        return answer

    def _stored(self, job: Job, stored: asyncio.Future, answer: asyncio.Future) -> None:
        if stored.cancelled():
            self._not_stored(job, asyncio.CancelledError())
            answer.cancel()
            return
        exc = stored.exception()
        if exc is not None:
            self._not_stored(job, exc)
            if not answer.done():
                answer.set_exception(exc)
            return
        self.health.succeeded()
        self.observers.submitted(job)
        if job.state is JobState.RUNNING:
            self.pool.launch(job)
        else:
            self.dispatcher.note_queued(job.scheduled_at_ms)
        if not answer.done():
            answer.set_result(None)

    def _not_stored(self, job: Job, exc: BaseException) -> None:
        self.backlog.release(1)
        if job.state is JobState.RUNNING:
            self.pool.unreserve()
        if isinstance(exc, Unavailable):
            self.health.failed()

    async def store_many(self, jobs: list[Job]) -> None:
        """Store queued jobs (a workflow's) in one transaction, all or none."""
        await asyncio.shield(self._store_queued(jobs))

    async def _store_queued(self, jobs: list[Job]) -> None:
        try:
            await self.backlog.admit(len(jobs), lambda: self.store.insert(jobs))
        except Unavailable:
            self.health.failed()
            raise
        self.health.succeeded()
        for job in jobs:
            self.observers.submitted(job)
        self.dispatcher.note_queued(jobs[0].scheduled_at_ms)

    async def _first_of_key(self, request: Request, request_hash: str | None,
                            wait_s: float) -> Job:
        """The job that took this idempotency key while ours was being stored."""
        first = await self.control.replayed(request.idempotency_key or "", request.owner,
                                            request_hash, wait_s)
        if first is None:
            raise Unavailable("the job with this idempotency key vanished") from None
        return first
