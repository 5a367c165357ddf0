"""The one hook through which the engine reports jobs to others without knowing them.

Live events, notifications, metrics and the backlog count all listen here; each overrides
only what it needs.
"""

from __future__ import annotations

from ..models import Job


class JobObserver:
    """Told of jobs on the event loop right after each commit; must be quick."""

    def job_changed(self, job: Job) -> None:
        """Any change of a job's state or progress, new and ended jobs included."""

    def job_submitted(self, job: Job) -> None:
        """A new job is stored."""

    def job_ended(self, job: Job) -> None:
        """A job reached a terminal state."""
