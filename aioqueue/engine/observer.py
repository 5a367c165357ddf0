"""The one hook through which the engine reports jobs to others without knowing them.

Live events, notifications, metrics, the backlog count and waiters all listen here; each
overrides only what it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..models import Job

log = logging.getLogger(__name__)


class JobObserver:
    """Told of jobs on the event loop right after each commit; must be quick."""

    def job_changed(self, job: Job) -> None:
        """Any change of a job's state or progress, new and ended jobs included."""

    def job_submitted(self, job: Job) -> None:
        """A new job is stored."""

    def job_ended(self, job: Job) -> None:
        """A job reached a terminal state."""

    def changes_read(self, cursor: str, since_ns: int) -> None:
        """The change log was read up to ``cursor`` by a read that began at
        ``since_ns`` (``time.monotonic_ns``): every change before it has been told."""

    def changes_lost(self) -> None:
        """More changes happened at once than the change log's reader tells: whoever
        counts on having seen every change must start over."""

    def follows(self, job_id: str) -> bool:
        """Whether a change of this job made by another server must be read for this
        observer (a server reads only the jobs some observer here has a use for)."""
        return False


class Observers(list[JobObserver]):
    """The engine's observers, told in order. A failing observer is logged and never stops
    the engine or the observers after it."""

    def changed(self, job: Job) -> None:
        """A stored job changed (claimed, re-queued, paused, resumed, progressed)."""
        self._each(job, "job_changed", lambda o: o.job_changed(job))

    def submitted(self, job: Job) -> None:
        """A new job is committed."""
        self.changed(job)
        self._each(job, "job_submitted", lambda o: o.job_submitted(job))

    def ended(self, job: Job) -> None:
        """A job's end is committed."""
        self.changed(job)
        self._each(job, "job_ended", lambda o: o.job_ended(job))

    def changes_read(self, cursor: str, since_ns: int) -> None:
        """The change log was read up to ``cursor`` (see ``JobObserver.changes_read``)."""
        for observer in self:
            observer.changes_read(cursor, since_ns)

    def changes_lost(self) -> None:
        """See ``JobObserver.changes_lost``."""
        for observer in self:
            observer.changes_lost()

    def follow(self, job_id: str) -> bool:
        """Whether some observer has a use for changes of ``job_id`` made elsewhere."""
        return any(observer.follows(job_id) for observer in self)

    def _each(self, job: Job, event: str, tell: Callable[[JobObserver], None]) -> None:
        for observer in self:
            try:
                tell(observer)
            except Exception:
                log.exception("job %s: %s failed in %r", job.id, event, observer,
                              extra={"job_id": job.id})
