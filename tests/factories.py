"""Job records for tests that write to the store directly."""

from __future__ import annotations

from aioqueue.models import Job, JobState, new_job_id, now_ms


def make_job(**changes) -> Job:
    """A queued ``echo`` job due now; any field can be changed."""
    now = now_ms()
    fields = dict(
        id=new_job_id(), process="echo", state=JobState.QUEUED, input=b"{}", result=None,
        error=None, progress=None, attempts=0, max_attempts=3, priority=0, created_at_ms=now,
        scheduled_at_ms=now, started_at_ms=None, ended_at_ms=None,
    )
    fields.update(changes)
    return Job(**fields)
