"""The worker pool: a fixed number of worker tasks, the jobs claimed for them, and their slots.

A slot is taken before a job is claimed or handed off (so a claimed job starts at once) and
given back as soon as its worker has queued the job's end for the next commit: the worker
then takes its next job at once, and the refill claim shares that commit.

Claim-ahead: a claim may take a few jobs more than there are free workers, kept here in
priority order, so that a worker that ends a job finds the next one waiting instead of
waiting one commit for the refill claim. How many is adaptive (``ClaimAhead``), at most
``engine.claim_ahead``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..models import Job
from .context import CURRENT_JOB, JobContext
from .ready import Ready
from .running import Running

log = logging.getLogger(__name__)


class SlotListener(Protocol):
    """Who wants to know that work may be claimed again (the dispatcher)."""

    def slot_freed(self, process: str) -> None:
        """A worker slot came free; the job it held was of ``process``."""

    def process_freed(self, process: str) -> None:
        """A job of ``process`` stopped running, so the process is below its limit."""


class ClaimAhead:
    """How many jobs to claim beyond the free workers: as many as the workers can end while
    one claim commits (Little's law: workers x claim time / run time), at most ``limit``.

    Both times are moving averages. Under a stream of short jobs that keeps every worker
    fed while its refill claim commits; with jobs that run longer than a claim takes it
    comes to 0, so no job waits in a server's memory, shown ``running``, while it could
    run at once on another server or, on this one, behind a job of higher priority.
    """

    def __init__(self, limit: int, workers: int) -> None:
        self.limit = limit
        self.workers = workers
        #: the current target, 0..limit
        self.jobs = 0
        self._run_s: float | None = None  # how long a worker holds a job, on average
        self._claim_s: float | None = None  # how long a claim takes, on average

    def ran(self, seconds: float) -> None:
        """A worker was done with a job after ``seconds``."""
        run = self._run_s
        self._run_s = seconds if run is None else run + (seconds - run) / 16

    def claimed(self, seconds: float) -> None:
        """A claim returned after ``seconds``: set the target."""
        claim = self._claim_s
        self._claim_s = claim = seconds if claim is None else claim + (seconds - claim) / 4
        run = self._run_s
        if run is not None and self.limit:
            self.jobs = self.limit if run <= 0 else min(
                self.limit, int(self.workers * claim / run))

class WorkerPool:
    """``size`` workers; each runs one job at a time with the ``run`` it is given."""

    def __init__(
        self, size: int, run: Callable[[Job], Awaitable[None]], *,
        progress: Callable[[Running, bytes], None], ahead: int = 0,
    ) -> None:
        if size < 1:
            raise ValueError("engine.workers must be at least 1")
        self.size = size
        #: slots taken: jobs claimed or handed off and not yet done with by a worker,
        #: slots reserved for a hand-off, and ends the store refused and keeps retrying
        self.held = 0
        #: how many jobs to claim beyond the free workers
        self.ahead = ClaimAhead(ahead, size)
        #: whether run and claim times are measured for ``ahead``: only when claim-ahead is
        #: on (off by default), so that a job and a claim read no clock for nothing
        self.timing = ahead > 0
        #: every job claimed or handed off whose end is not yet stored, from its claim on
        self.running: dict[str, Running] = {}
        #: how many of those each process has, for concurrency limits
        self.busy: Counter[str] = Counter()
        self.listener: SlotListener | None = None
        self.tasks: list[asyncio.Task] = []
        self._run = run
        self._progress = progress
        #: claimed jobs waiting for a worker, highest priority first, then earliest due
        self._ready: Ready[tuple[float, int, int, Job | None]] = Ready()
        self._order = 0  # ties in the queue go in arrival order

    @property
    def free(self) -> int:
        """Workers neither running a job nor reserved for one (what a hand-off may take)."""
        return self.size - self.held

    @property
    def room(self) -> int:
        """How many jobs a claim may take now: the free workers and the claim-ahead."""
        return self.size + self.ahead.jobs - self.held

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._work(), name=f"aioqueue-worker-{n}")
                      for n in range(self.size)]

    async def stop(self) -> None:
        """Let the workers take every job claimed for them (a drain gives those back),
        then end them. Ends still being written are awaited with ``settled``."""
        for _ in self.tasks:
            self._order += 1
            self._ready.put((float("inf"), 0, self._order, None))
        await asyncio.gather(*self.tasks)
        self.tasks = []

    async def settled(self) -> None:
        """Return once every job's end is stored (or given up): nothing runs any more."""
        while self.running:
            await next(iter(self.running.values())).done.wait()

    def reserve(self) -> bool:
        """Take a free worker for a job about to be handed off; False when none is free."""
        if self.held >= self.size:
            return False
        self.held += 1
        return True

    def unreserve(self) -> None:
        """The job a slot was reserved for was not stored after all."""
        self.held -= 1

    def claimed(self, jobs: list[Job]) -> None:
        """Jobs a claim returned, now running in the store: each takes a slot and waits
        for a worker in priority order."""
        self.held += len(jobs)
        for job in jobs:
            self.launch(job)

    def launch(self, job: Job) -> None:
        """Hand a job now running in the store to a worker; its slot is taken."""
        self.begin(job)
        self._order += 1
        self._ready.put((-job.priority, job.scheduled_at_ms, self._order, job))

    def begin(self, job: Job) -> Running:
        """The job's ``Running``, made at its claim so a control request always finds it."""
        run = self.running.get(job.id)
        if run is None:
            def report(_job_id: str, payload: bytes) -> None:
                self._progress(run, payload)

            run = Running(job, JobContext(job, asyncio.get_running_loop(), report))
            self.running[job.id] = run
            self.busy[job.process] += 1
        return run

    def end(self, run: Running) -> None:
        """The job's end is stored (or not ours to write): it leaves the running set."""
        process = run.job.process
        del self.running[run.job.id]
        self.busy[process] -= 1
        if not self.busy[process]:
            del self.busy[process]
        if self.listener is not None:
            self.listener.process_freed(process)
        run.finished()

    def hold(self) -> None:
        """The store refused a job's end and it is kept for another try: it takes a slot
        again until ``unhold``, so the pool does not claim past what the store counts."""
        self.held += 1

    def unhold(self, process: str) -> None:
        """A held slot (a worker's job, or an end kept for another try) of a job of
        ``process`` is free again."""
        self.held -= 1
        if self.listener is not None:
            self.listener.slot_freed(process)

    async def _work(self) -> None:
        timing = self.timing
        began = 0.0
        while (job := (await self._ready.get())[3]) is not None:
            current = CURRENT_JOB.set(job.id)  # log lines of the job carry its id
            if timing:
                began = time.monotonic()
            try:
                await self._run(job)
            except Exception:
                log.exception("job %s: the worker failed outside the handler", job.id)
            finally:
                CURRENT_JOB.reset(current)
                if timing:
                    self.ahead.ran(time.monotonic() - began)
                self.unhold(job.process)
