"""A job in a worker's hands, and what its run comes to.

Shared by single jobs (``engine``) and batches (``engine.batch``), so that both end, retry
and give back jobs by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..models import ErrorCode, JobState, error_json
from .context import ProcessFailed
from .running import Running


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
