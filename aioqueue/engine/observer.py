"""The one hook through which the engine reports jobs to others without knowing them.

Live events, notifications, metrics, the backlog count and waiters all listen here; each
overrides only what it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

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


#: the hooks of one job, each told only to the observers that override it
_JOB_HOOKS = ("job_changed", "job_submitted", "job_ended")


class Observers:
    """The engine's observers, told in order. A failing observer is logged and never stops
    the engine or the observers after it.

    Each job hook is called only on the observers whose class overrides it: a submit tells
    the two or three that care, not every observer twice.
    """

    def __init__(self, observers: Iterable[JobObserver] = ()) -> None:
        self._all: list[JobObserver] = []
        self._hooks: dict[str, list[Callable[[Job], None]]] = {name: [] for name in _JOB_HOOKS}
        # each job hook's list, looked up once here rather than at every job
        self._changed, self._submitted, self._ended = (self._hooks[name] for name in _JOB_HOOKS)
        self.extend(observers)

    def append(self, observer: JobObserver) -> None:
        """Tell ``observer`` too, after those added before it."""
        self._all.append(observer)
        for name, hooks in self._hooks.items():
            if getattr(type(observer), name, None) is not getattr(JobObserver, name):
                hooks.append(getattr(observer, name))

    def extend(self, observers: Iterable[JobObserver]) -> None:
        for observer in observers:
            self.append(observer)

    def __iadd__(self, observers: Iterable[JobObserver]) -> Observers:
        self.extend(observers)
        return self

    def __iter__(self) -> Iterator[JobObserver]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def changed(self, job: Job) -> None:
        """A stored job changed (claimed, re-queued, paused, resumed, progressed)."""
        self._tell(self._changed, job)

    def submitted(self, job: Job) -> None:
        """A new job is committed."""
        self._tell(self._changed, job)
        self._tell(self._submitted, job)

    def ended(self, job: Job) -> None:
        """A job's end is committed."""
        self._tell(self._changed, job)
        self._tell(self._ended, job)

    def changes_read(self, cursor: str, since_ns: int) -> None:
        """The change log was read up to ``cursor`` (see ``JobObserver.changes_read``)."""
        for observer in self._all:
            observer.changes_read(cursor, since_ns)

    def changes_lost(self) -> None:
        """See ``JobObserver.changes_lost``."""
        for observer in self._all:
            observer.changes_lost()

    def follow(self, job_id: str) -> bool:
        """Whether some observer has a use for changes of ``job_id`` made elsewhere."""
        return any(observer.follows(job_id) for observer in self._all)

    @staticmethod
    def _tell(hooks: list[Callable[[Job], None]], job: Job) -> None:
        for hook in hooks:
            try:
                hook(job)
            except Exception:
                log.exception("job %s: %s failed in %r", job.id, hook.__name__,
                              getattr(hook, "__self__", hook), extra={"job_id": job.id})
