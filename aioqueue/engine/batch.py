"""Batch handlers: one call runs up to ``batch_size`` queued jobs of a process at once.

(Many jobs in one request are a bulk submission, ``engine.bulk``; many writes in one
transaction are the store's group commit.)

A worker that takes a job of a batch process claims more queued jobs of the same process
(waiting up to ``batch_wait`` seconds for them to arrive), calls the handler once with the
list of inputs, and records every job's outcome on its own. The handler returns a list with
one entry per input: a result, or an exception instance for that input's failure (which is
retried like any failure while attempts are left). If the handler raises, every job of the
batch fails with that error.

Stopping one job of a running batch (cancel) interrupts the shared call: the stopped job
ends as asked and the others are re-queued with their attempt given back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import orjson

from ..models import ErrorCode, Job, now_ms
from ..store import JobStore
from .arrivals import Arrivals
from .context import _DONE, JobCancelled, JobContext, _Done
from .observer import Observers
from .outcome import GIVE_BACK, Outcome, Recorder, failed, raised, succeeded
from .pool import WorkerPool
from .registry import Process
from .running import Running


class BatchContext:
    """What a batch handler gets: one ``JobContext`` per input, in the same order."""

    def __init__(self, contexts: Sequence[JobContext]) -> None:
        self.contexts = list(contexts)
        self.job_ids = [c.job_id for c in self.contexts]

    def progress(self, percent: float | None = None, message: str | None = None) -> _Done:
        """Report the same progress for every job of the batch."""
        for ctx in self.contexts:
            ctx.progress(percent, message)
        return _DONE

    def checkpoint(self) -> _Done:
        """Raises ``JobCancelled`` once any job of the batch has been stopped.

        A batch does not wait while one of its jobs is paused: the others did not ask to.
        """
        for ctx in self.contexts:
            if ctx.cancelled:
                raise JobCancelled(ctx.job_id)
        return _DONE

    def __len__(self) -> int:
        return len(self.contexts)


class BatchRunner:
    """Runs the batches of batch processes on the pool's workers."""

    def __init__(self, store: JobStore, pool: WorkerPool, arrivals: Arrivals,
                 observers: Observers, recorder: Recorder,
                 accepting: Callable[[], bool]) -> None:
        self.store = store
        self.pool = pool
        self.arrivals = arrivals
        self.observers = observers
        self.recorder = recorder
        self.accepting = accepting

    async def run(self, first: Job, proc: Process) -> None:
        """Collect a batch that starts with ``first``, run it, record each job's end."""
        runs = [self.pool.begin(first)]
        outcomes: list[Outcome | None] = [None] * proc.batch_size
        try:
            await self._collect(runs, proc)
            if self.accepting():
                outcomes = list(await _execute(runs, proc))
            else:  # a drain began while the batch was collected: give every job back
                outcomes = [GIVE_BACK for _ in runs]
        finally:
            for run, outcome in zip(runs, outcomes):
                self.recorder.record(run, outcome)

    async def _collect(self, runs: list[Running], proc: Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + proc.batch_wait_s
        while len(runs) < proc.batch_size and self.accepting():
            seen = self.arrivals.count
            more = await self.store.claim_process(proc.name, proc.batch_size - len(runs),
                                                  now_ms())
            for job in more:
                runs.append(self.pool.begin(job))
                self.observers.changed(job)
            remaining = deadline - loop.time()
            if len(runs) >= proc.batch_size or remaining <= 0:
                break
            await self.arrivals.wait(seen, remaining)


async def _execute(runs: list[Running], proc: Process) -> list[Outcome]:
    ctx = BatchContext([run.ctx for run in runs])
    inputs = [orjson.loads(run.job.input) for run in runs]
    call = (
        proc.handler(ctx, inputs) if proc.is_async
        else asyncio.to_thread(proc.handler, ctx, inputs)
    )
    task = asyncio.ensure_future(call)
    for run in runs:
        run.task = task
    try:
        results = await asyncio.wait_for(task, proc.timeout_s)
    except TimeoutError:
        message = f"the batch ran past its timeout of {proc.timeout_s} s"
        return [failed(run, ErrorCode.TIMEOUT, message) for run in runs]
    except (asyncio.CancelledError, JobCancelled):
        if not any(run.stop_reason for run in runs):
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return [failed(run, ErrorCode.EXCEPTION, "the handler was cancelled")
                    for run in runs]
        return [
            failed(run, ErrorCode.CANCELLED, "cancelled by a client")
            if run.stop_reason else GIVE_BACK
            for run in runs
        ]
    except Exception as exc:
        return [raised(run, exc) for run in runs]
    if not isinstance(results, (list, tuple)) or len(results) != len(runs):
        got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
        message = f"the batch handler returned {got} results for {len(runs)} inputs"
        return [failed(run, ErrorCode.EXCEPTION, message) for run in runs]
    return [
        raised(run, result) if isinstance(result, BaseException)
        else succeeded(run, result)
        for run, result in zip(runs, results)
    ]
