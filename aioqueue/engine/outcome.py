"""What a job's run comes to, and how that is recorded.

Shared by single jobs (``worker``) and batches (``batch``), so that both end, retry and
give back jobs by the same rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import Unavailable
from ..models import ErrorCode, JobState, error_json, now_ms
from ..store import JobStore
from .context import ProcessFailed
from .health import WriteHealth
from .observer import Observers
from .pool import WorkerPool
from .retry import RetryPolicy
from .running import FINAL, Running

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """The state to record; ``QUEUED`` without ``retry`` gives the attempt back."""

    state: JobState
    result: bytes | None = None
    error: bytes | None = None
    retry: bool = False


#: the job goes back to the queue as if it had not run (a drain, or a batch interrupted)
GIVE_BACK = Outcome(JobState.QUEUED)


def failed(run: Running, code: ErrorCode, message: str) -> Outcome:
    """A failure: retried while attempts are left (never a cancel), given back on a drain."""
    if run.stop_reason == "drain":
        return GIVE_BACK
    retry = code is not ErrorCode.CANCELLED and run.job.attempts < run.job.max_attempts
    if retry:
        return Outcome(JobState.QUEUED, retry=True)
    return Outcome(JobState.FAILURE, error=error_json(code, message))


def raised(run: Running, exc: BaseException) -> Outcome:
    """The outcome of a handler that raised (or, in a batch, returned) ``exc``."""
    if isinstance(exc, ProcessFailed):
        return failed(run, exc.code, exc.message)
    return failed(run, ErrorCode.EXCEPTION, f"{type(exc).__name__}: {exc}")


def succeeded(run: Running, result: Any) -> Outcome:
    """Success, unless the result cannot be stored as JSON."""
    try:
        return Outcome(JobState.SUCCESS, result=orjson.dumps(result))
    except TypeError as exc:
        return failed(run, ErrorCode.EXCEPTION, f"the result is not JSON-serialisable: {exc}")


class Recorder:
    """Writes each run's outcome to the store and tells who must know.

    An outcome the store refuses (a full disk) is kept in memory and its write tried again
    with backoff until the store takes it; meanwhile the job stays with its worker and in
    the running set, so the pool, the concurrency limits and the metrics all still count it
    as running, as the store does. Only a drain that outlives its grace period gives it up.
    """

    def __init__(self, store: JobStore, policy: RetryPolicy, pool: WorkerPool,
                 observers: Observers, note_queued: Callable[[int], None], *,
                 health: WriteHealth, write_retry: RetryPolicy) -> None:
        self.store = store
        self.policy = policy
        self.pool = pool
        self.observers = observers
        self.note_queued = note_queued
        self.health = health
        self.write_retry = write_retry

    async def record(self, run: Running, outcome: Outcome) -> None:
        """Write the outcome; protected from cancellation so the end is never half-written.

        A job a client cancelled has its end written already; one whose claim was lost is
        no longer ours to write.
        """
        run.ending = True
        if run.stop_reason in FINAL:
            return
        if outcome.state is JobState.QUEUED:
            await self._requeue(run, outcome)
        else:
            await self._finish(run, outcome)

    async def _requeue(self, run: Running, outcome: Outcome) -> None:
        job = run.job
        if outcome.retry:
            when = now_ms() + self.policy.delay_ms(job.attempts)
        else:
            when = job.scheduled_at_ms

        def write() -> Awaitable[bool]:
            return self.store.requeue(job, scheduled_at_ms=when,
                                      give_back_attempt=not outcome.retry)

        if not await self._until_stored(run, asyncio.ensure_future(write()), write):
            return
        self.observers.changed(job.evolve(
            state=JobState.QUEUED, scheduled_at_ms=when,
            attempts=job.attempts if outcome.retry else job.attempts - 1))
        self.note_queued(when)

    async def _finish(self, run: Running, outcome: Outcome) -> None:
        job = run.job
        ended_at = now_ms()

        def write() -> Awaitable[bool]:
            return self.store.finish(job, outcome.state, result=outcome.result,
                                     error=outcome.error, ended_at_ms=ended_at)

        # started before the slot is given back, so the refill claim may share its write
        first = asyncio.ensure_future(write())
        self.pool.release_early(job)
        if not await self._until_stored(run, first, write):
            return
        self.observers.ended(job.evolve(state=outcome.state, result=outcome.result,
                                        error=outcome.error, ended_at_ms=ended_at))

    async def _until_stored(self, run: Running, first: asyncio.Future,
                            again: Callable[[], Awaitable[bool]]) -> bool:
        """Await the write until the store takes it; True if it changed the job, False if it
        matched nothing (a client ended the job first) or was given up in a drain."""
        write: Awaitable[bool] = first
        tries = 0
        try:
            while True:
                try:
                    written = await asyncio.shield(write)
                except Unavailable:
                    tries += 1
                    if not self._keep_trying(run, tries):
                        return False
                    await asyncio.sleep(self.write_retry.delay_s(tries))
                    write = asyncio.ensure_future(again())
                    continue
                self.health.succeeded()
                if not written:
                    log.info("job %s: the end was not recorded, a client ended it first",
                             run.job.id)
                return written
        finally:
            if tries:
                self.health.pending_ends -= 1

    def _keep_trying(self, run: Running, tries: int) -> bool:
        """After a refused write: note it, and say whether to try again."""
        self.health.failed()
        job = run.job
        if tries == 1:
            self.health.pending_ends += 1
            self.pool.take_back(job)
            log.warning("job %s: the store refused its outcome; keeping it and trying again",
                        job.id, extra={"job_id": job.id})
        if run.stop_reason == "drain":
            log.error("job %s: the store still refuses its outcome as the server stops; "
                      "the outcome is lost and the job will be recovered as if it had not "
                      "ended", job.id, extra={"job_id": job.id})
            return False
        return True
