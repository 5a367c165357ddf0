"""Bulk submission: many jobs in one request, stored in one transaction, all or none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..models import Job, JobState, new_job_id, now_ms
from .registry import Process


def dump_input(data: Any) -> bytes:
    """The input as stored JSON; ``InvalidRequest`` if it cannot be encoded."""
    try:
        return orjson.dumps(data)
    except TypeError as exc:
        raise InvalidRequest(f"the input is not JSON-serialisable: {exc}") from None


def bulk_jobs(
    proc: Process, items: Sequence[Any], *, priority: int, owner: str | None,
    callback_url: str | None, notify_email: str | None,
) -> list[Job]:
    """Queued jobs for every item, or the first invalid item's error, naming its index."""
    now = now_ms()
    jobs = []
    for index, data in enumerate(items):
        try:
            proc.validate(data)
            raw = dump_input(data)
        except InvalidRequest as exc:
            raise type(exc)(f"item {index}: {exc.message}",
                            details={"index": index, "problems": exc.details}) from None
        jobs.append(Job(
            id=new_job_id(), process=proc.name, state=JobState.QUEUED, input=raw, result=None,
            error=None, progress=None, attempts=0, max_attempts=proc.max_attempts,
            priority=priority, created_at_ms=now, scheduled_at_ms=now, started_at_ms=None,
            ended_at_ms=None, owner=owner, callback_url=callback_url, notify_email=notify_email,
        ))
    return jobs
