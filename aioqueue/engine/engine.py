"""The engine: accepts jobs, dispatches them to a fixed pool of workers, reports their end.

A dispatcher claims due jobs from the store (priority, then time) onto a bounded queue,
never more than there are free workers, so a claimed job starts at once. A job submitted
while a worker is free and nothing older is due is stored directly as ``running`` and
handed to the worker without waiting for a claim. Waiters on a job's end are futures,
resolved after the terminal state is committed; nothing polls the database in a loop.

A process with a ``concurrency`` limit is never handed off: the claim counts its running
jobs and leaves it out while it is full. What clients do to existing jobs (cancel, pause,
resume, delete, list, idempotent replays) is in ``control``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

import orjson

from ..config import EngineSettings, LimitSettings
from ..errors import DuplicateJob, Unavailable
from ..models import ErrorCode, Job, JobState, error_json, new_job_id, now_ms, plural
from ..store import JobStore
from .backlog import Backlog
from .batch import Arrivals, bulk_jobs, dump_input, run_batch
from .context import CURRENT_JOB, JobCancelled, JobContext
from .control import JobControl, request_digest
from .dispatch import Dispatching
from .observer import JobObserver
from .outcome import GIVE_BACK, Outcome, failed, raised, record, succeeded
from .registry import Registry
from .running import Running, TimedOut
from .waiters import Waiters

log = logging.getLogger(__name__)


class Engine(JobControl, Dispatching):
    """Owns the queue and the workers. Knows nothing of HTTP."""

    def __init__(
        self, store: JobStore, registry: Registry, settings: EngineSettings, *,
        limits: LimitSettings | None = None,
    ) -> None:
        if settings.workers < 1:
            raise ValueError("engine.workers must be at least 1")
        self.store = store
        self.registry = registry
        self.settings = settings
        self.backlog = Backlog(limits or LimitSettings(), store.count_active)
        self.accepting = False
        self._free = settings.workers
        self._released: set[str] = set()  # jobs whose worker slot was given back early
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=settings.workers)
        self._wake = asyncio.Event()
        self._next_due_ms: int | None = None  # when the earliest queued job is due
        self._noted_ms: int | None = None  # earliest job queued since the claim began
        #: every job claimed or handed off and not yet ended, from its claim on
        self._running: dict[str, Running] = {}
        #: how many of those each process has, for concurrency limits
        self._busy: Counter[str] = Counter()
        #: processes the last claim left out because they were at their limit
        self._full: set[str] = set()
        self._waiters = Waiters()
        self._tasks: list[asyncio.Task] = []
        self._arrivals = Arrivals()
        #: told of every change, stored and ended job (events, notices, metrics, backlog)
        self.observers: list[JobObserver] = [self.backlog]

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Recover what a killed process left running, then start dispatcher and workers."""
        requeued, interrupted = await self.store.recover(now_ms())
        if requeued or interrupted:
            log.warning("recovered %s: %d re-queued, %d interrupted",
                        plural(requeued + interrupted, "running job"), requeued, interrupted)
        self._next_due_ms = await self.store.next_due_ms()
        await self.backlog.start()
        self._tasks = [asyncio.create_task(self._dispatch(), name="aioqueue-dispatcher")]
        self._tasks += [
            asyncio.create_task(self._work(), name=f"aioqueue-worker-{n}")
            for n in range(self.settings.workers)
        ]
        self.accepting = True

    async def drain(self, grace_s: float) -> None:
        """Stop accepting, let running jobs end within ``grace_s``, re-queue the rest.

        Calling it again once drained does nothing.
        """
        self.accepting = False
        if not self._tasks:
            return
        self._wake.set()
        self._arrivals.notify()  # a batch waiting for more inputs runs with what it has
        await self._tasks[0]  # the dispatcher: it claims nothing more
        running = [r.done.wait() for r in self._running.values()]
        if running:
            log.info("draining: waiting up to %.1f s for %s", grace_s,
                     plural(len(running), "running job"))
            await asyncio.wait([asyncio.ensure_future(w) for w in running], timeout=grace_s)
        late = list(self._running.values())
        if late:
            log.warning("re-queueing %s that outlived the %.1f s grace period: %s",
                        plural(len(late), "job"), grace_s, " ".join(r.job.id for r in late))
        for run in late:
            self._stop(run, "drain")
        # one stop sign per worker, behind any claimed job, which a worker now re-queues
        for _ in range(self.settings.workers):
            await self._queue.put(None)
        await asyncio.gather(*self._tasks[1:])
        self._tasks = []
        self._waiters.release_all()

    # ---------------------------------------------------------------- clients

    async def submit(
        self, process: str, data: Any, *, raw: bytes | None = None, priority: int = 0,
        delay_s: float = 0.0, run_at_ms: int | None = None, wait_s: float = 0.0,
        owner: str | None = None, callback_url: str | None = None,
        notify_email: str | None = None, idempotency_key: str | None = None,
    ) -> Job:
        """Store a new job durably and return it; with ``wait_s``, wait that long for its end.

        ``raw`` is the input as JSON bytes when the caller has them already; ``owner`` is
        the client the job belongs to (None where there is no authentication);
        ``callback_url`` and ``notify_email`` are told when the job ends. It starts no
        earlier than ``run_at_ms`` if given, else ``delay_s`` from now. An
        ``idempotency_key`` this owner used before returns (and waits for) the first job,
        or raises ``IdempotencyConflict`` if that request was a different one.
        """
        if not self.accepting:
            raise Unavailable("the server is shutting down")
        proc = self.registry.get(process)
        proc.validate(data)
        request_hash = None
        if idempotency_key is not None:
            request_hash = request_digest(proc.name, data)
            first = await self._replayed(idempotency_key, owner, request_hash, wait_s)
            if first is not None:
                return first
        if raw is None:
            raw = dump_input(data)
        await self.backlog.reserve(1)
        now = now_ms()
        if run_at_ms is not None:
            scheduled = max(now, run_at_ms)
        else:
            scheduled = now + max(0, round(delay_s * 1000))
        handoff = (
            scheduled <= now
            and proc.batch_size == 1  # batch jobs wait in the table, where a batch collects them
            and proc.concurrency is None  # limited ones go through the claim, which counts
            and self._free > 0
            and (self._next_due_ms is None or self._next_due_ms > now)
        )
        job = Job(
            id=new_job_id(), process=proc.name,
            state=JobState.RUNNING if handoff else JobState.QUEUED,
            input=raw, result=None, error=None, progress=None,
            attempts=1 if handoff else 0, max_attempts=proc.max_attempts, priority=priority,
            created_at_ms=now, scheduled_at_ms=scheduled,
            started_at_ms=now if handoff else None, ended_at_ms=None, owner=owner,
            callback_url=callback_url, notify_email=notify_email,
            idempotency_key=idempotency_key, request_hash=request_hash,
        )
        if handoff:
            self._free -= 1
        waiter = self._waiters.add(job.id) if wait_s > 0 else None
        try:
            try:
                # shielded: a caller that goes away must not stop the job's follow-up
                await asyncio.shield(self._store_new(job, handoff))
            except DuplicateJob:  # the same key committed first, in this batch or before
                first = await self._replayed(idempotency_key or "", owner, request_hash, wait_s)
                if first is None:
                    raise Unavailable("the job with this idempotency key vanished") from None
                return first
            if waiter is None:
                return job
            ended = await self._waiters.wait(waiter, wait_s)
            return ended if ended is not None else (await self.store.get(job.id) or job)
        finally:
            if waiter is not None:
                self._waiters.drop(job.id, waiter)

    async def _store_new(self, job: Job, handoff: bool) -> None:
        """Insert ``job``; once committed, hand it to its worker or tell the dispatcher."""
        try:
            await self.backlog.insert(1, lambda: self.store.insert([job]))
        except BaseException:
            if handoff:
                self._free += 1
            raise
        self._submitted(job)
        if handoff:
            self._launch(job)
        else:
            self._note_queued(job.scheduled_at_ms)

    async def submit_bulk(
        self, process: str, items: Sequence[Any], *, priority: int = 0, owner: str | None = None,
        callback_url: str | None = None, notify_email: str | None = None,
    ) -> list[Job]:
        """Store many queued jobs of one process in one transaction; all or none.

        An invalid item rejects the whole call with ``InvalidInput`` naming its index.
        """
        if not self.accepting:
            raise Unavailable("the server is shutting down")
        jobs = bulk_jobs(self.registry.get(process), items, priority=priority, owner=owner,
                         callback_url=callback_url, notify_email=notify_email)
        if jobs:
            await asyncio.shield(self._store_queued(jobs))
        return jobs

    async def _store_queued(self, jobs: list[Job]) -> None:
        await self.backlog.admit(len(jobs), lambda: self.store.insert(jobs))
        for job in jobs:
            self._submitted(job)
        self._note_queued(jobs[0].scheduled_at_ms)

    async def figures(self) -> tuple[dict[str, int], int]:
        """Active jobs per state, and how many the workers run now (for metrics)."""
        return await self.store.count_by_state(), len(self._running)

    # ---------------------------------------------------------------- listeners

    def _tell(self, event: str, job: Job) -> None:
        """Call ``event`` on every observer; a failing observer never stops the engine."""
        for observer in self.observers:
            try:
                getattr(observer, event)(job)
            except Exception:
                log.exception("job %s: %s failed in %r", job.id, event, observer,
                              extra={"job_id": job.id})

    def _changed(self, job: Job) -> None:
        self._tell("job_changed", job)

    def _submitted(self, job: Job) -> None:
        """A new job is committed."""
        self._tell("job_changed", job)
        self._tell("job_submitted", job)

    def _ended(self, job: Job) -> None:
        """Tell waiters and observers that ``job`` reached a terminal state."""
        self._tell("job_changed", job)
        self._waiters.ended(job)
        self._tell("job_ended", job)

    def _launch(self, job: Job) -> None:
        """Hand a job now ``running`` in the store to the workers (one is reserved for it)."""
        self._begin(job)
        self._queue.put_nowait(job)

    # ---------------------------------------------------------------- working

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            current = CURRENT_JOB.set(job.id)
            try:
                await self._run(job)
            except Exception:
                log.exception("job %s: the worker failed outside the handler", job.id)
            finally:
                CURRENT_JOB.reset(current)
                if job.id not in self._released:
                    self._release(job)
                self._released.discard(job.id)

    def _release(self, job: Job) -> None:
        """Give the job's worker slot back, so the dispatcher may claim for it."""
        self._free += 1
        if self._next_due_ms is not None or job.process in self._full:
            self._wake.set()

    def _release_early(self, job: Job) -> None:
        """The job's end is written with the next commit: let the claim that refills its
        worker ride in that same commit instead of waiting for it (one commit per round
        of jobs, not two). The claimed job waits at most that commit for its worker."""
        if job.id not in self._released:
            self._released.add(job.id)
            self._release(job)

    async def _run(self, job: Job) -> None:
        proc = self.registry.get(job.process) if job.process in self.registry else None
        if proc is not None and proc.batch_size > 1 and self.accepting:
            await run_batch(self, job, proc)
            return
        run = self._begin(job)
        try:
            if run.stop_reason == "cancel":
                return  # cancelled while it waited for this worker; its end is written
            if not self.accepting:
                run.stop_reason = "drain"
                outcome = GIVE_BACK
            else:
                outcome = await self._execute(run)
            await record(self, run, outcome)
        finally:
            self._finish_run(run)

    def _begin(self, job: Job) -> Running:
        """The job's ``Running``, made at its claim so a control request always finds it."""
        run = self._running.get(job.id)
        if run is None:
            run = Running(job, JobContext(job, asyncio.get_running_loop(), self._progress))
            self._running[job.id] = run
            self._busy[job.process] += 1
        return run

    def _finish_run(self, run: Running) -> None:
        del self._running[run.job.id]
        self._busy[run.job.process] -= 1
        if not self._busy[run.job.process]:
            del self._busy[run.job.process]
        if run.job.process in self._full:  # below its concurrency limit: its jobs may be due
            self._note_queued(now_ms())
        run.done.set()

    def _progress(self, job_id: str, payload: bytes) -> None:
        """A handler reported progress: tell observers now, write it in the background."""
        run = self._running.get(job_id)
        if run is None:
            return
        run.job = run.job.evolve(progress=payload)
        self._changed(run.job)
        if run.progress_writer is None or run.progress_writer.done():
            run.progress_writer = asyncio.ensure_future(self._write_progress(run))

    async def _write_progress(self, run: Running) -> None:
        """Write a run's latest progress until the store has it; reports that arrive while
        one is written are coalesced into the next write."""
        written = None
        while run.job.progress is not written:
            written = run.job.progress
            assert written is not None
            try:
                await self.store.set_progress(run.job, written)
            except Unavailable:
                log.warning("job %s: progress not stored, the store is unavailable", run.job.id)
                return

    async def _execute(self, run: Running) -> Outcome:
        job = run.job
        try:
            proc = self.registry.get(job.process)
        except Exception as exc:
            return Outcome(JobState.FAILURE, error=error_json(ErrorCode.EXCEPTION, str(exc)))
        data = orjson.loads(job.input)
        call: Awaitable[Any] = (
            proc.handler(run.ctx, data) if proc.is_async
            else asyncio.to_thread(proc.handler, run.ctx, data)
        )
        run.task = asyncio.ensure_future(call)
        try:
            result = await run.supervise(proc.timeout_s)
        except TimedOut:
            return failed(run, ErrorCode.TIMEOUT,
                                f"the job ran past its timeout of {proc.timeout_s} s")
        except (asyncio.CancelledError, JobCancelled):
            if run.stop_reason is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                return failed(run, ErrorCode.EXCEPTION, "the handler was cancelled")
            return failed(run, ErrorCode.CANCELLED, "cancelled by a client")
        except Exception as exc:
            return raised(run, exc)
        return succeeded(run, result)

    def _stop(self, run: Running, reason: str) -> None:
        run.stop(reason)
