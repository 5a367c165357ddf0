"""What a job's run comes to, and how that is recorded.

Shared by single jobs (``worker``) and batches (``batch``), so that both end, retry and
give back jobs by the same rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

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


class Outcome(NamedTuple):
    """The state to record; ``QUEUED`` without ``retry`` gives the attempt back.

    A tuple: one is made at every job's end, and a frozen dataclass costs three times as
    much to make."""

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

    The worker only queues the write (``record``) and goes on to its next job; the job
    stays in the running set, counted by the concurrency limits and the metrics as the
    store counts it, until its end is committed, and leaves it then (``pool.end``).

    An outcome the store refuses (a full disk) is kept in memory and its write tried again
    with backoff until the store takes it; meanwhile it also takes a worker slot again
    (``pool.hold``), so the pool does not claim past what the store counts. Only a drain
    that outlives its grace period gives it up.
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
        self._retrying: set[asyncio.Task] = set()

    def record(self, run: Running, outcome: Outcome | None) -> None:
        """Queue the outcome's write for the next commit and return at once; the job leaves
        the pool once it is stored. Once queued, the write happens whatever the caller does.

        ``None`` (the run failed outside its handler), a job a client cancelled (its end is
        written already) or one whose claim was lost (no longer ours) writes nothing.
        """
        run.ending = True
        if outcome is None or run.stop_reason in FINAL:
            self.pool.end(run)
            return
        # queued at the loop's next turn, not now: the worker gives its slot back first, so
        # the dispatcher's refill claim joins these ends in the same commit (queued now,
        # the writer would take them alone and the claim would wait for a commit of its own)
        asyncio.get_running_loop().call_soon(_Ending(self, run, outcome).start)

    def retry_later(self, ending: _Ending) -> None:
        """The first write was refused: keep trying in a task of its own (the rare path)."""
        task = asyncio.ensure_future(self._until_stored(ending))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _until_stored(self, ending: _Ending) -> None:
        run = ending.run
        self.health.pending_ends += 1
        self.pool.hold()
        log.warning("job %s: the store refused its outcome; keeping it and trying again",
                    run.job.id, extra={"job_id": run.job.id})
        tries = 1
        try:
            while True:
                self.health.failed()
                if run.stop_reason == "drain":
                    log.error("job %s: the store still refuses its outcome as the server "
                              "stops; the outcome is lost and the job will be recovered as "
                              "if it had not ended", run.job.id, extra={"job_id": run.job.id})
                    self.pool.end(run)
                    return
                await asyncio.sleep(self.write_retry.delay_s(tries))
                try:
                    written = await asyncio.shield(ending.write())
                except Unavailable:
                    tries += 1
                    continue
                ending.stored(written)
                return
        finally:
            self.health.pending_ends -= 1
            self.pool.unhold(run.job.process)


class _Ending:
    """One run's outcome on its way to the store."""

    __slots__ = ("recorder", "run", "outcome", "when")

    def __init__(self, recorder: Recorder, run: Running, outcome: Outcome) -> None:
        self.recorder = recorder
        self.run = run
        self.outcome = outcome
        if outcome.state is not JobState.QUEUED:
            self.when = now_ms()  # ended_at
        elif outcome.retry:
            self.when = now_ms() + recorder.policy.delay_ms(run.job.attempts)
        else:
            self.when = run.job.scheduled_at_ms

    def start(self) -> None:
        """The first write, answered in ``first_written``."""
        self.write().add_done_callback(self.first_written)

    def write(self) -> asyncio.Future:
        """Queue the write (a retry or give-back, or the end) for the next commit."""
        store, job, outcome = self.recorder.store, self.run.job, self.outcome
        if outcome.state is JobState.QUEUED:
            return asyncio.ensure_future(store.requeue(
                job, scheduled_at_ms=self.when, give_back_attempt=not outcome.retry))
        try:
            return store.finish_soon(
                job, outcome.state, result=outcome.result, error=outcome.error,
                ended_at_ms=self.when)
        except Exception as exc:  # refused at once (a closed store): answered as a future
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            return refused

    def first_written(self, write: asyncio.Future) -> None:
        exc = asyncio.CancelledError() if write.cancelled() else write.exception()
        if isinstance(exc, Unavailable):
            self.recorder.retry_later(self)
        elif exc is not None:
            log.error("job %s: its outcome was not written: %r", self.run.job.id, exc,
                      extra={"job_id": self.run.job.id})
            self.recorder.pool.end(self.run)
        else:
            self.stored(write.result())

    def stored(self, written: bool) -> None:
        """The store answered: tell who must know, and let the job leave the pool."""
        recorder, run, job, outcome = self.recorder, self.run, self.run.job, self.outcome
        recorder.health.succeeded()
        if not written:
            log.info("job %s: the end was not recorded, a client ended it first", job.id)
        elif outcome.state is JobState.QUEUED:
            recorder.observers.changed(job.evolve(
                state=JobState.QUEUED, scheduled_at_ms=self.when,
                attempts=job.attempts if outcome.retry else job.attempts - 1))
            recorder.note_queued(self.when)
        else:
            recorder.observers.ended(job.evolve(
                state=outcome.state, result=outcome.result, error=outcome.error,
                ended_at_ms=self.when))
        recorder.pool.end(run)
