"""The worker pool: a fixed number of worker tasks, their free slots, and the jobs they hold.

A slot is taken before a job is claimed or handed off (so a claimed job starts at once) and
given back when its worker is done with it, or earlier: once the job's end is being
written, a refill claim may already share that write's transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..models import Job
from .context import CURRENT_JOB, JobContext
from .running import Running

log = logging.getLogger(__name__)


class SlotListener(Protocol):
    """Who wants to know that work may be claimed again (the dispatcher)."""

    def slot_freed(self, process: str) -> None:
        """A worker slot came free; the job it held was of ``process``."""

    def process_freed(self, process: str) -> None:
        """A job of ``process`` stopped running, so the process is below its limit."""


class WorkerPool:
    """``size`` workers; each runs one job at a time with the ``run`` it is given."""

    def __init__(
        self, size: int, run: Callable[[Job], Awaitable[None]], *,
        progress: Callable[[Running, bytes], None],
    ) -> None:
        if size < 1:
            raise ValueError("engine.workers must be at least 1")
        self.size = size
        #: slots neither running a job nor reserved for one
        self.free = size
        #: every job claimed or handed off and not yet ended, from its claim on
        self.running: dict[str, Running] = {}
        #: how many of those each process has, for concurrency limits
        self.busy: Counter[str] = Counter()
        self.listener: SlotListener | None = None
        self.tasks: list[asyncio.Task] = []
        self._run = run
        self._progress = progress
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=size)
        self._released: set[str] = set()  # jobs whose slot was given back early

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._work(), name=f"aioqueue-worker-{n}")
                      for n in range(self.size)]

    async def stop(self) -> None:
        """Let each worker finish what it holds (claimed jobs queue ahead), then end it."""
        for _ in self.tasks:
            await self._queue.put(None)
        await asyncio.gather(*self.tasks)
        self.tasks = []

    def reserve(self) -> bool:
        """Take a free slot for a job about to be handed off; False when none is free."""
        if self.free < 1:
            return False
        self.free -= 1
        return True

    def unreserve(self) -> None:
        """The job a slot was reserved for was not stored after all."""
        self.free += 1

    def launch(self, job: Job) -> None:
        """Hand a job now running in the store to a worker; its slot was reserved."""
        self.begin(job)
        self._queue.put_nowait(job)

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
        """The worker is done with the job: it leaves the running set."""
        process = run.job.process
        del self.running[run.job.id]
        self.busy[process] -= 1
        if not self.busy[process]:
            del self.busy[process]
        if self.listener is not None:
            self.listener.process_freed(process)
        run.done.set()

    def release_early(self, job: Job) -> None:
        """The job's end is being written: let the claim that refills its slot share that
        write instead of waiting for it (one transaction per round of jobs, not two). The
        claimed job waits at most that write for its worker."""
        if job.id not in self._released:
            self._released.add(job.id)
            self._release(job)

    def take_back(self, job: Job) -> None:
        """The job's end could not be written after all and its worker keeps trying: the
        slot given back early is taken back, unless a claim has used it already."""
        if job.id in self._released and self.free > 0:
            self._released.discard(job.id)
            self.free -= 1

    def _release(self, job: Job) -> None:
        self.free += 1
        if self.listener is not None:
            self.listener.slot_freed(job.process)

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            current = CURRENT_JOB.set(job.id)  # log lines of the job carry its id
            try:
                await self._run(job)
            except Exception:
                log.exception("job %s: the worker failed outside the handler", job.id)
            finally:
                CURRENT_JOB.reset(current)
                if job.id not in self._released:
                    self._release(job)
                self._released.discard(job.id)
