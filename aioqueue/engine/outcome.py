"""What a job's run comes to, and how that is recorded.

Shared by single jobs (``engine``) and batches (``engine.batch``), so that both end, retry
and give back jobs by the same rules.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..config import EngineSettings
from ..models import ErrorCode, JobState, error_json, now_ms
from .context import ProcessFailed
from .running import Running

if TYPE_CHECKING:
    from .engine import Engine

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


async def record(engine: Engine, run: Running, outcome: Outcome) -> None:
    """Write the outcome; protected from cancellation so the end is never half-written.

    A job a client cancelled has its end written already.
    """
    run.ending = True
    if run.stop_reason == "cancel":
        return
    job = run.job
    if outcome.state is JobState.QUEUED:
        if outcome.retry:
            when = now_ms() + round(backoff_s(engine.settings, job.attempts) * 1000)
        else:
            when = job.scheduled_at_ms
        await asyncio.shield(engine.store.requeue(
            job, scheduled_at_ms=when, give_back_attempt=not outcome.retry))
        engine._changed(job.evolve(
            state=JobState.QUEUED, scheduled_at_ms=when,
            attempts=job.attempts if outcome.retry else job.attempts - 1))
        engine._note_queued(when)
        return
    ended_at = now_ms()
    ending = asyncio.ensure_future(engine.store.finish(
        job, outcome.state, result=outcome.result, error=outcome.error,
        ended_at_ms=ended_at))
    engine._release_early(job)
    written = await asyncio.shield(ending)
    if not written:
        log.info("job %s: the end was not recorded, a client ended it first", job.id)
        return
    engine._ended(job.evolve(state=outcome.state, result=outcome.result,
                           error=outcome.error, ended_at_ms=ended_at))


def backoff_s(settings: EngineSettings, attempts: int) -> float:
    """The wait before the retry after ``attempts`` runs: exponential, capped, +-50% jitter."""
    base = min(settings.retry_max_s, settings.retry_base_s * 2 ** (attempts - 1))
    return base * random.uniform(0.5, 1.5)
