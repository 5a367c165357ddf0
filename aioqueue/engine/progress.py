"""Progress reports of running handlers: told to observers at once, written in the background.

One writer per running job always writes the latest report; reports that arrive while one
is being written are coalesced into the next write. Progress is advice: a report the store
cannot take is logged and dropped, and the job runs on.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import Unavailable
from ..store import JobStore
from .observer import Observers
from .running import Running

log = logging.getLogger(__name__)


class ProgressWriter:
    """Takes a handler's reports (on the loop) and keeps the store up to date."""

    def __init__(self, store: JobStore, observers: Observers) -> None:
        self.store = store
        self.observers = observers

    def report(self, run: Running, payload: bytes) -> None:
        """A handler reported progress; a report after its run ended is dropped."""
        if run.over:
            return
        run.job = run.job.evolve(progress=payload)
        self.observers.changed(run.job)
        if run.progress_writer is None or run.progress_writer.done():
            run.progress_writer = asyncio.ensure_future(self._write(run))

    async def _write(self, run: Running) -> None:
        written = None
        while run.job.progress is not written:
            written = run.job.progress
            assert written is not None
            try:
                await self.store.set_progress(run.job, written)
            except Unavailable:
                log.warning("job %s: progress not stored, the store is unavailable", run.job.id)
                return
