"""What a handler sees of its job: ids, progress reports and checkpoints.

The same methods serve ``async def`` handlers on the loop and plain ``def`` handlers in
a thread: ``ctx.progress(...)`` records at once and returns an already-finished awaitable,
so ``await ctx.progress(...)`` and a bare ``ctx.progress(...)`` both work.

``ctx.checkpoint()`` is where a handler may be paused or stopped: while the job is
paused, an ``async def`` handler's ``await ctx.checkpoint()`` waits on the loop and a
thread handler's ``ctx.checkpoint()`` blocks its thread, until it is resumed or cancelled.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable, Generator
from contextvars import ContextVar

from ..errors import InvalidRequest
from ..models import ErrorCode, Job, progress_json


#: the id of the job the current task or thread works on; log lines carry it
CURRENT_JOB: ContextVar[str | None] = ContextVar("aioqueue_current_job", default=None)


class JobCancelled(Exception):
    """Raised at a checkpoint when a client has cancelled the job."""


class ProcessFailed(Exception):
    """Raised (or, by a batch handler, returned) to end a job with a chosen error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Done:
    """An awaitable that is already finished."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


_DONE = _Done()


class JobContext:
    """Handed to every handler as its first argument."""

    def __init__(
        self, job: Job, loop: asyncio.AbstractEventLoop, report: Callable[[str, bytes], None]
    ) -> None:
        self.job_id = job.id
        self.process = job.process
        self.attempt = job.attempts
        self.max_attempts = job.max_attempts
        #: each parent job's id and result (``depends_on``); empty for a job without
        self.parents: dict[str, Any] = {}
        self._loop = loop
        self._report = report
        self._cancelled = False
        self._paused = False
        # what a checkpoint waits on while the job is paused, one per side; made by the
        # first checkpoint that waits (most jobs are never paused), set while it may run
        self._go: threading.Event | None = None
        self._go_async: asyncio.Event | None = None

    def progress(self, percent: float | None = None, message: str | None = None) -> _Done:
        """Report progress (percent from 0 to 100, and/or a short message)."""
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)):
                raise InvalidRequest("progress percent must be a number")
            if not math.isfinite(percent) or not 0 <= percent <= 100:
                raise InvalidRequest("progress percent must be between 0 and 100")
        if message is not None:
            message = str(message)[:1000]
        payload = progress_json(percent, message)
        if _on_loop(self._loop):
            self._report(self.job_id, payload)
        else:
            self._loop.call_soon_threadsafe(self._report, self.job_id, payload)
        return _DONE

    def checkpoint(self) -> Awaitable[None]:
        """A safe place to stop or pause: raises ``JobCancelled`` once the job has been
        cancelled, and waits while it is paused."""
        if self._cancelled:
            raise JobCancelled(self.job_id)
        if not self._paused:
            return _DONE
        if _on_loop(self._loop):
            return self._wait_async()
        with _MAKING:  # the loop pauses and resumes under the same lock
            if self._go is None:
                self._go = threading.Event()
                if not self._paused:
                    self._go.set()
            go = self._go
        go.wait()
        if self._cancelled:
            raise JobCancelled(self.job_id)
        return _DONE

    async def _wait_async(self) -> None:
        if self._go_async is None:
            self._go_async = asyncio.Event()
            if not self._paused:
                self._go_async.set()
        await self._go_async.wait()
        if self._cancelled:
            raise JobCancelled(self.job_id)

    @property
    def cancelled(self) -> bool:
        """True once a client has asked to cancel the job."""
        return self._cancelled

    @property
    def paused(self) -> bool:
        """True while a client holds the job paused."""
        return self._paused

    def _cancel(self) -> None:
        self._cancelled = True
        self._resume()

    def _pause(self) -> None:
        with _MAKING:
            self._paused = True
            if self._go is not None:
                self._go.clear()
        if self._go_async is not None:
            self._go_async.clear()

    def _resume(self) -> None:
        with _MAKING:
            self._paused = False
            if self._go is not None:
                self._go.set()
        if self._go_async is not None:
            self._go_async.set()


#: guards a context's pause flag against a thread's first wait (rarely taken: only on a
#: pause, a resume, and a thread's checkpoint while paused)
_MAKING = threading.Lock()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

