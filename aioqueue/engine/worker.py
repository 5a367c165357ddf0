"""What a worker does with a job it was given: run its handler, then record the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..errors import UnknownProcess
from ..models import ErrorCode, Job, JobState, error_json
from .batch import BatchRunner
from .context import JobCancelled
from .outcome import GIVE_BACK, Outcome, Recorder, failed, raised, succeeded
from .pool import WorkerPool
from .registry import Process, Registry
from .running import FINAL, Running, TimedOut


class JobRunner:
    """Runs one claimed (or handed-off) job to its recorded end; batches go to ``batches``."""

    def __init__(self, registry: Registry, pool: WorkerPool, recorder: Recorder,
                 batches: BatchRunner, accepting: Callable[[], bool],
                 parents: Callable[[Job], Awaitable[dict[str, Any]]]) -> None:
        self.parents = parents  # a child's parents' results, for ``ctx.parents``
        self.registry = registry
        self.pool = pool
        self.recorder = recorder
        self.batches = batches
        self.accepting = accepting

    async def run(self, job: Job) -> None:
        try:
            proc: Process | None = self.registry.get(job.process)
        except UnknownProcess as exc:
            proc, unknown = None, exc
        if proc is not None and proc.batch_size > 1 and self.accepting():
            await self.batches.run(job, proc)
            return
        run = self.pool.begin(job)
        outcome: Outcome | None = None
        try:
            if run.stop_reason in FINAL:
                return  # cancelled (its end is written) or lost while it waited for a worker
            if not self.accepting():
                run.stop_reason = "drain"
                outcome = GIVE_BACK  # claimed but not started: back to the queue, unrun
            elif proc is None:
                outcome = Outcome(JobState.FAILURE,
                                  error=error_json(ErrorCode.EXCEPTION, str(unknown)))
            else:
                outcome = await self._execute(run, proc)
        finally:
            # queued for the next commit; the worker goes on to its next job meanwhile
            self.recorder.record(run, outcome)

    async def _execute(self, run: Running, proc: Process) -> Outcome:
        job = run.job
        data = orjson.loads(job.input)
        if job.depends_on:
            run.ctx.parents = await self.parents(job)
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
