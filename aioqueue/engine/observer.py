"""The hook through which the engine reports jobs to others (metrics) without knowing them."""

from __future__ import annotations

from typing import Protocol

from ..models import Job


class JobObserver(Protocol):
    """Told of each job stored and each job ended, e.g. to count them for metrics.

    Called on the event loop right after the commit; it must be quick and must not raise.
    """

    def job_submitted(self, job: Job) -> None: ...

    def job_ended(self, job: Job) -> None: ...
