"""The engine: accepts jobs, dispatches them to a fixed pool of workers, reports their end.

It wires small collaborators together and is the one face the HTTP layer sees:

- ``Submitter`` (``submit``): checks, stores and hands off or queues new jobs;
- ``Dispatcher`` (``dispatch``): claims due jobs for free workers, sleeps until the next;
- ``WorkerPool`` (``pool``) and ``JobRunner`` (``worker``): the workers and what they do;
- ``Recorder`` (``outcome``) with the ``RetryPolicy`` (``retry``): each run's end or retry;
- ``JobControl`` (``control``): what clients do to existing jobs;
- ``Observers`` (``observer``): who is told (waiters, backlog, events, notices, metrics).

Waiters on a job's end are futures, resolved after the terminal state is committed; nothing
polls the database in a loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from ..config import EngineSettings, EventSettings, LimitSettings
from ..errors import InvalidRequest, Unavailable
from ..models import Job, now_ms, plural
from ..store import ChangePage, JobStore, Node
from .schedspec import ScheduleSpec
from .arrivals import Arrivals
from .backlog import Backlog
from .batch import BatchRunner
from .changefeed import ChangeFeed
from .dispatch import Dispatcher
from .health import WriteHealth
from .observer import Observers
from .operations import JobControl
from .outcome import Recorder
from .pool import WorkerPool
from .progress import ProgressWriter
from .registry import Registry
from .dependencies import MAX_PARENTS, Dependents
from .retry import RetryPolicy
from .workflow import workflow_jobs
from .schedules import Scheduler
from .submit import Request, Submitter
from .waiters import Waiters
from .worker import JobRunner

log = logging.getLogger(__name__)


class Engine:
    """Owns the queue and the workers. Knows nothing of HTTP."""

    def __init__(
        self, store: JobStore, registry: Registry, settings: EngineSettings, *,
        limits: LimitSettings | None = None, schedules: Mapping[str, ScheduleSpec] | None = None,
        events: EventSettings | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.accepting = False
        self.backlog = Backlog(limits or LimitSettings(), store.count_active)
        self.waiters = Waiters()
        #: told of every change, stored and ended job (events, notices, metrics, backlog)
        self.observers = Observers([self.backlog, self.waiters])
        self.retry = RetryPolicy(settings.retry_base_s, settings.retry_max_s)
        #: whether the store takes writes (``/health``)
        self.health = WriteHealth(store)
        progress = ProgressWriter(store, self.observers)
        self.pool = WorkerPool(settings.workers, self._run, progress=progress.report,
                               ahead=settings.claim_ahead)
        arrivals = Arrivals()
        self.dispatcher = Dispatcher(store, registry, self.pool, self.observers, arrivals,
                                     self.health)
        self.control = JobControl(store, self.pool, self.waiters, self.observers,
                                  self.dispatcher.note_queued)
        recorder = Recorder(store, self.retry, self.pool, self.observers,
                            self.dispatcher.note_queued, health=self.health,
                            write_retry=RetryPolicy(settings.write_retry_base_s,
                                                    settings.write_retry_max_s))
        batches = BatchRunner(store, self.pool, arrivals, self.observers, recorder,
                              self._accepting)
        #: follows the ends of jobs that others wait for
        self.dependents = Dependents(store, self.observers, self.dispatcher.note_queued)
        self.observers.append(self.dependents)
        events = events or EventSettings()
        #: reads the change log behind the observers: resumable event ids, lost notices
        self.feed = ChangeFeed(store, self.observers, self.pool.running,
                               catch_up_s=events.catch_up_s, max_jobs=events.resume_max_jobs)
        self.observers.append(self.feed)
        self._runner = JobRunner(registry, self.pool, recorder, batches, self._accepting,
                                 self.dependents.results)
        self._submitter = Submitter(store, registry, self.backlog, self.pool, self.dispatcher,
                                    self.control, self.waiters, self.observers, self.health)
        #: the schedules and the task that fires them
        self.schedules = Scheduler(store, registry, self.backlog, self._adopt)
        self._configured = dict(schedules or {})

    @property
    def tasks(self) -> list[asyncio.Task]:
        """The engine's background tasks: the dispatcher and the workers."""
        task = self.dispatcher.task
        return ([task] if task is not None else []) + self.pool.tasks

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Recover what a killed process left running, start dispatcher and workers, then
        the schedules (the config's, and those created over HTTP before)."""
        requeued, interrupted = await self.store.recover(now_ms())
        if requeued or interrupted:
            log.warning("recovered %s: %d re-queued, %d interrupted",
                        plural(requeued + interrupted, "running job"), requeued, interrupted)
        await self.backlog.start()
        self.store.subscribe(self.control)  # what other servers on the database do
        self.store.subscribe(self.backlog)  # the heartbeat recounts the cluster's backlog
        self.store.subscribe(self.feed.listener)  # and has the change log read
        self.feed.start()
        await self.dependents.start()
        await self.dispatcher.start()
        self.pool.start()
        self.accepting = True
        await self.schedules.start(self._configured)

    async def drain(self, grace_s: float) -> None:
        """Stop accepting, let running jobs end within ``grace_s``, re-queue the rest.

        Calling it again once drained does nothing.
        """
        self.accepting = False
        await self.schedules.stop()
        await self.feed.stop()
        if not self.pool.tasks:
            return
        self.dispatcher.arrivals.notify()  # a batch waiting for inputs runs with what it has
        await self.dispatcher.stop()
        running = [r.done.wait() for r in self.pool.running.values()]
        if running:
            log.info("draining: waiting up to %.1f s for %s", grace_s,
                     plural(len(running), "running job"))
            await asyncio.wait([asyncio.ensure_future(w) for w in running], timeout=grace_s)
        late = list(self.pool.running.values())
        if late:
            log.warning("re-queueing %s that outlived the %.1f s grace period: %s",
                        plural(len(late), "job"), grace_s, " ".join(r.job.id for r in late))
        for run in late:
            run.stop("drain")
        await self.pool.stop()  # behind any claimed job, which a worker now re-queues
        await self.pool.settled()  # the ends and give-backs the workers queued are stored
        self.waiters.release_all()

    def _accepting(self) -> bool:
        return self.accepting

    def _adopt(self, job: Job) -> None:
        """A queued job the scheduler stored: take it on as if it was submitted."""
        self.observers.submitted(job)
        self.dispatcher.note_queued(job.scheduled_at_ms)

    def _run(self, job: Job) -> Awaitable[None]:
        return self._runner.run(job)  # no coroutine of its own: every job passes here

    # ---------------------------------------------------------------- clients

    async def submit(
        self, process: str, data: Any, *, raw: bytes | None = None, priority: int = 0,
        delay_s: float = 0.0, run_at_ms: int | None = None, wait_s: float = 0.0,
        owner: str | None = None, callback_url: str | None = None,
        notify_email: str | None = None, idempotency_key: str | None = None,
        depends_on: Sequence[str] = (), viewer: str | None = None,
    ) -> Job:
        """Store a new job durably and return it; with ``wait_s``, wait that long for its end.

        ``raw`` is the input as JSON bytes when the caller has them already; ``owner`` is
        the client the job belongs to (None where there is no authentication);
        ``callback_url`` and ``notify_email`` are told when the job ends. It starts no
        earlier than ``run_at_ms`` if given, else ``delay_s`` from now. An
        ``idempotency_key`` this owner used before returns (and waits for) the first job,
        or raises ``IdempotencyConflict`` if that request was a different one.

        With ``depends_on`` it stays queued until those jobs (each one ``viewer`` may see;
        None: any) have succeeded, and fails as soon as one fails (``dependencies``).
        """
        self._check_accepting()
        parents = tuple(dict.fromkeys(depends_on))
        if len(parents) > MAX_PARENTS:
            raise InvalidRequest(f"depends_on names at most {MAX_PARENTS} jobs")
        if parents:
            await self.dependents.check(parents, viewer)
            self.dependents.expect(parents)
        request = Request(priority=priority, delay_s=delay_s, run_at_ms=run_at_ms, owner=owner,
                          callback_url=callback_url, notify_email=notify_email,
                          idempotency_key=idempotency_key, depends_on=parents)
        job = await self._submitter.submit(process, data, request, raw=raw, wait_s=wait_s)
        if parents and not job.terminal:  # a parent that had failed already ended it at once
            stored = await self.store.get(job.id)
            if stored is not None and stored.terminal:
                self.observers.ended(stored)
                return stored
        return job

    async def submit_bulk(
        self, process: str, items: Sequence[Any], *, priority: int = 0, owner: str | None = None,
        callback_url: str | None = None, notify_email: str | None = None,
    ) -> list[Job]:
        """Store many queued jobs of one process in one transaction; all or none.

        An invalid item rejects the whole call with ``InvalidInput`` naming its index.
        """
        self._check_accepting()
        request = Request(priority=priority, owner=owner, callback_url=callback_url,
                          notify_email=notify_email)
        return await self._submitter.submit_bulk(process, items, request)

    async def submit_workflow(
        self, items: Sequence[dict[str, Any]], *, owner: str | None = None,
        viewer: str | None = None, callback_url: str | None = None,
        notify_email: str | None = None,
    ) -> list[Job]:
        """Store a workflow (``workflow.workflow_jobs``) in one transaction, all or none;
        existing parents must be jobs ``viewer`` may see."""
        self._check_accepting()
        jobs, existing = workflow_jobs(self.registry, items, owner=owner,
                                       callback_url=callback_url, notify_email=notify_email)
        await self.dependents.check(sorted(existing), viewer)
        for job in jobs:
            self.dependents.expect(job.depends_on)
        await self._submitter.store_many(jobs)
        for n, job in enumerate(jobs if existing else ()):  # a failed parent ends them at once
            if job.depends_on and (stored := await self.store.get(job.id)) and stored.terminal:
                self.observers.ended(stored)
                jobs[n] = stored
        return jobs

    def _check_accepting(self) -> None:
        if not self.accepting:
            raise Unavailable("the server is shutting down")

    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """The job as committed, or None; with ``owner``, only if that client owns it."""
        return await self.control.get(job_id, owner=owner)

    async def changes_since(self, cursor: str | None, *, limit: int,
                            job_id: str | None = None) -> ChangePage:
        """The jobs changed after an event-id ``cursor`` (``JobStore.changes_since``)."""
        return await self.store.changes_since(cursor, limit=limit, job_id=job_id)

    async def wait(self, job_id: str, timeout_s: float, *, owner: str | None = None) -> Job | None:
        """The job once terminal, or as it stands after ``timeout_s``; None if there is none."""
        return await self.control.wait(job_id, timeout_s, owner=owner)

    async def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """End an active job as ``failure``/``cancelled`` (see ``JobControl.cancel``)."""
        return await self.control.cancel(job_id, owner=owner)

    async def pause(self, job_id: str, *, owner: str | None = None) -> Job:
        """Hold a job (see ``JobControl.pause``)."""
        return await self.control.pause(job_id, owner=owner)

    async def resume(self, job_id: str, *, owner: str | None = None) -> Job:
        """Let a paused job go on (see ``JobControl.resume``)."""
        return await self.control.resume(job_id, owner=owner)

    async def delete(self, job_id: str, *, owner: str | None = None) -> None:
        """Remove a terminal job's record (see ``JobControl.delete``)."""
        await self.control.delete(job_id, owner=owner)

    async def list_jobs(
        self, *, process: str | None = None, state: str | None = None, limit: int = 50,
        after: str | None = None, owner: str | None = None, schedule: str | None = None,
        depends_on: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None at the end)."""
        return await self.control.list_jobs(process=process, state=state, limit=limit,
                                            after=after, owner=owner, schedule=schedule,
                                            depends_on=depends_on)

    async def nodes(self) -> list[Node]:
        """The servers sharing the store (just this one on a single-owner store)."""
        return await self.store.nodes(len(self.pool.running))

    async def figures(self) -> tuple[dict[str, int], int]:
        """Active jobs per state, and how many the workers run now (for metrics)."""
        return await self.store.count_by_state(), len(self.pool.running)
