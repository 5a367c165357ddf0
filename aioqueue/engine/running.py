"""A job a worker holds: its context, its handler task, and how it is being stopped or paused.

The engine creates one when a job is claimed (or handed off), before a worker starts it,
so a client's cancel or pause always finds the job it raced with.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from ..models import Job
from .context import JobContext


#: stop reasons after which the run writes nothing: its end is written, or not ours to write
FINAL = ("cancel", "lost")


class TimedOut(Exception):
    """The handler ran past its process's timeout (paused time not counted)."""


class Running:
    """A job a worker is running, and why it may be stopped early."""

    __slots__ = ("job", "ctx", "task", "progress_writer", "stop_reason", "ending", "over",
                 "_done", "_waiter")

    def __init__(self, job: Job, ctx: JobContext) -> None:
        self.job = job
        self.ctx = ctx
        self.task: asyncio.Future | None = None
        #: the task writing the latest progress report, while one is being written
        self.progress_writer: asyncio.Future | None = None
        #: "cancel" (a client asked; the end is already written), "drain" (shutdown) or
        #: "lost" (our claim ran out: another server rescues the job; nothing is written)
        self.stop_reason: str | None = None
        #: set once the worker is writing the job's outcome; a resume then waits for ``done``
        self.ending = False
        #: set once the job has left the pool (``finished``)
        self.over = False
        self._done: asyncio.Event | None = None
        #: what ``supervise`` awaits: settled when the handler ends, its time runs out, or
        #: the job is paused or resumed (so the timeout clock can stop and restart)
        self._waiter: asyncio.Future | None = None

    @property
    def done(self) -> asyncio.Event:
        """Set once the job has left the pool: its end is stored, or not ours to write.

        Made when first asked for: most jobs are never waited for (a drain, a resume).
        """
        if self._done is None:
            self._done = asyncio.Event()
            if self.over:
                self._done.set()
        return self._done

    def finished(self) -> None:
        """The job has left the pool: whoever waits on ``done`` goes on."""
        self.over = True
        if self._done is not None:
            self._done.set()

    def stop(self, reason: str) -> None:
        """Tell the handler to stop: its task is cancelled, a thread sees it at a checkpoint.

        A client's cancel and a lost claim are final: a later drain does not turn them into
        a re-queue.
        """
        if self.stop_reason in FINAL:
            return
        self.stop_reason = reason
        self.ctx._cancel()
        if self.task is not None:
            self.task.cancel()

    def pause(self) -> None:
        """Hold the handler at its next checkpoint."""
        self.ctx._pause()
        self._wake()

    def resume(self) -> None:
        """Let the handler go on past its checkpoint."""
        self.ctx._resume()
        self._wake()

    async def supervise(self, timeout_s: float | None) -> Any:
        """The handler's result; ``TimedOut`` once it has run ``timeout_s`` unpaused seconds.

        One future per turn, settled by callbacks (the handler's end, a timer, a pause or
        resume): no task of its own, since every job of the server passes here. Without a
        timeout there is no clock to stop on a pause: the handler's task is awaited itself,
        which spares a future, two callbacks and a turn of the loop.
        """
        task = self.task
        assert task is not None
        if timeout_s is None:
            try:
                return await task  # a cancel of the worker cancels the handler too
            except asyncio.CancelledError:
                task.add_done_callback(_consume)
                raise
        loop = asyncio.get_running_loop()
        left = timeout_s
        task.add_done_callback(self._wake)
        try:
            while not task.done():
                paused = self.ctx.paused
                started = loop.time()
                self._waiter = loop.create_future()
                timer = None if paused or left is None else loop.call_at(started + left,
                                                                         self._wake)
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                    if timer is not None:
                        timer.cancel()
                if left is not None and not paused and not task.done():
                    left -= loop.time() - started
                    if left <= 0:
                        task.cancel()
                        task.add_done_callback(_consume)
                        raise TimedOut()
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_consume)
            raise
        finally:
            task.remove_done_callback(self._wake)
        return task.result()

    def _wake(self, *_: object) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _consume(task: asyncio.Future) -> None:
    """Fetch a late outcome of a handler nobody waits for, so it is not logged as lost."""
    with suppress(asyncio.CancelledError, Exception):
        task.result()
