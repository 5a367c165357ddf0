"""What clients do to jobs that exist: read, wait for, cancel, pause, resume, delete and
list them, and submit again under the same idempotency key.

Each change is one guarded write in the store; the running handler (if any) is told
afterwards, in the order the writes were committed. A change the job's state does not
allow is ``InvalidTransition`` naming that state; a job the caller may not see is
``JobNotFound``, exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import orjson

from ..errors import (
    IdempotencyConflict, InvalidRequest, InvalidTransition, JobNotFound, Unavailable,
)
from ..models import TERMINAL, ErrorCode, Job, JobState, error_json, now_ms, sources
from ..store import JobStore, StoreListener
from .observer import Observers
from .pool import WorkerPool
from .waiters import Waiters

#: the largest page a listing returns
MAX_PAGE = 1000

#: a control write is tried again (at most this often) when it lost a race with a change
#: that would have allowed it
_TRIES = range(3)


class JobControl(StoreListener):
    """The client's side of a job's life, after its submission; also told by the store of
    what clients of other servers on the same database did."""

    def __init__(self, store: JobStore, pool: WorkerPool, waiters: Waiters,
                 observers: Observers, note_queued: Callable[[int], None]) -> None:
        self.store = store
        self.pool = pool
        self.waiters = waiters
        self.observers = observers
        self.note_queued = note_queued
        self._following: set[asyncio.Future] = set()

    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """The job as committed, or None; with ``owner``, only if that client owns it."""
        return await self.store.get(job_id, owner=owner)

    async def wait(self, job_id: str, timeout_s: float, *, owner: str | None = None) -> Job | None:
        """The job once terminal, or as it stands after ``timeout_s``; None if there is none."""
        if timeout_s <= 0:  # no Future for a plain read
            return await self.store.get(job_id, owner=owner)
        waiter = self.waiters.add(job_id)
        try:
            job = await self.store.get(job_id, owner=owner)
            if job is None or job.terminal or timeout_s <= 0:
                return job
            ended = await self.waiters.wait(waiter, timeout_s)
            return ended if ended is not None else await self.store.get(job_id, owner=owner)
        finally:
            self.waiters.drop(job_id, waiter)

    async def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """End a queued, paused or running job as ``failure``/``cancelled`` at once.

        A running handler is then stopped (its task cancelled; a thread handler sees it at
        its next checkpoint) and whatever it returns later is thrown away.
        """
        error = error_json(ErrorCode.CANCELLED, "cancelled by a client")
        for tries in _TRIES:
            job = await self.store.cancel(job_id, error=error, ended_at_ms=now_ms(), owner=owner)
            if job is not None:
                break
            await self._refuse(job_id, owner, "cancel", sources(JobState.FAILURE), tries)
        run = self.pool.running.get(job_id)
        if run is not None:
            run.stop("cancel")
        self.observers.ended(job)
        return job

    async def pause(self, job_id: str, *, owner: str | None = None) -> Job:
        """Hold a job: a queued one is not claimed, a running one waits at its next checkpoint."""
        for tries in _TRIES:
            job = await self.store.pause(job_id, owner=owner)
            if job is not None:
                break
            await self._refuse(job_id, owner, "pause", sources(JobState.PAUSED), tries)
        run = self.pool.running.get(job_id)
        if run is not None:
            run.pause()
        self.observers.changed(job)
        return job

    async def resume(self, job_id: str, *, owner: str | None = None) -> Job:
        """Let a paused job go on: its waiting handler continues, or it is queued again."""
        for tries in _TRIES:
            run = self.pool.running.get(job_id)
            while run is not None and run.ending:
                # its outcome is being written: resume what that leaves (paused or terminal)
                await run.done.wait()
                run = self.pool.running.get(job_id)
            live = run is not None and run.stop_reason is None
            # no await between the look-up above and this write being queued
            job = await self.store.resume(job_id, running=live, owner=owner)
            if job is not None:
                break
            await self._refuse(job_id, owner, "resume", {JobState.PAUSED}, tries)
        if live and run is not None:
            run.resume()
        else:
            self.note_queued(job.scheduled_at_ms)
        self.observers.changed(job)
        return job

    async def delete(self, job_id: str, *, owner: str | None = None) -> None:
        """Remove a terminal job's record (and with it its idempotency key)."""
        for tries in _TRIES:
            if await self.store.delete(job_id, owner=owner):
                return
            await self._refuse(job_id, owner, "delete", TERMINAL, tries)

    async def replayed(self, key: str, owner: str | None, request_hash: str | None,
                        wait_s: float) -> Job | None:
        """The job this owner submitted with ``key`` (waited for like a new one), None if
        there is none; ``IdempotencyConflict`` if it was submitted for another request."""
        first = await self.store.find_by_key(key, owner=owner)
        return None if first is None else await self._replay(first, request_hash, wait_s)

    async def _replay(self, first: Job, request_hash: str | None, wait_s: float) -> Job:
        """The answer to a repeated idempotency key: the first job, if the request matches."""
        if first.request_hash != request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request",
                details={"job": first.id},
            )
        if wait_s > 0 and not first.terminal:
            return await self.wait(first.id, wait_s) or first
        return first

    async def list_jobs(
        self, *, process: str | None = None, state: str | None = None, limit: int = 50,
        after: str | None = None, owner: str | None = None, schedule: str | None = None,
        depends_on: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None at the end)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
        try:
            wanted = JobState(state) if state is not None else None
        except ValueError:
            names = ", ".join(s.value for s in JobState)
            raise InvalidRequest(f"state must be one of {names}") from None
        before = decode_cursor(after) if after is not None else None
        rows = await self.store.list_jobs(
            process=process, state=wanted, owner=owner, before=before, limit=limit + 1,
            schedule=schedule, depends_on=depends_on,
        )
        page = rows[:limit]
        cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        return [job for _, job in page], cursor

    # ---------------------------------------------------------------- other servers

    def jobs_due(self, scheduled_at_ms: int) -> None:
        """Another server queued a job due then: the dispatcher may have to wake earlier."""
        self.note_queued(scheduled_at_ms)

    def claims_lost(self, job_ids: Sequence[str]) -> None:
        """Our claims on these jobs ran out: stop their handlers, which then write nothing
        (a live server rescues the jobs)."""
        for job_id in job_ids:
            run = self.pool.running.get(job_id)
            if run is not None and not run.ending:
                run.stop("lost")

    def sweep(self) -> None:
        """The heartbeat's safety net: the dispatcher looks at the queue, and every job
        someone waits for here is read again, in case its notice was lost."""
        self.note_queued(now_ms())
        for job_id in self.waiters.watched():
            self.job_changed(job_id)

    def job_changed(self, job_id: str) -> None:
        """Another server changed this job: bring its handler here (if it runs here), its
        waiters and the observers in line with the store. A job nothing here runs, waits
        for or streams is not read at all: otherwise every server would read every job
        each other server ends or advances, and reads would grow with the servers (jobs
        queued elsewhere arrive through ``jobs_due``)."""
        if job_id not in self.pool.running and not self.observers.follow(job_id):
            return
        task = asyncio.ensure_future(self._follow(job_id))
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _follow(self, job_id: str) -> None:
        try:
            job = await self.store.get(job_id)
        except Unavailable:
            return  # a lost notice costs latency only
        if job is None:
            return
        run = self.pool.running.get(job_id)
        if run is not None and run.ending:
            run = None  # its worker is writing its outcome, which the store then guards
        if job.terminal:
            if run is not None:
                run.stop("cancel")
            self.observers.ended(job)
            return
        if run is not None:
            if job.state is JobState.PAUSED:
                run.pause()
            elif job.state is JobState.RUNNING:
                run.resume()
        elif job.state is JobState.QUEUED:
            self.note_queued(job.scheduled_at_ms)
        self.observers.changed(job)

    async def _refuse(self, job_id: str, owner: str | None, verb: str,
                      allowed: Collection[JobState], tries: int) -> None:
        """Raise why a guarded write matched nothing, unless the job has just moved into a
        state that allows it (the write raced with its change): then the caller tries again."""
        job = await self.store.get(job_id, owner=owner)
        if job is None:
            raise JobNotFound("no such job")
        if job.state not in allowed or tries == _TRIES[-1]:
            raise InvalidTransition(f"cannot {verb} a job that {job.state.phrase}",
                                    details={"state": job.state.value})


def request_digest(process: str, data: Any) -> str:
    """What makes two submissions the same request: the process and the input's JSON
    value (key order and white space do not count)."""
    digest = hashlib.sha256(process.encode())
    digest.update(b"\n")
    digest.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def encode_cursor(seq: int) -> str:
    """An opaque page cursor: clients pass it back as ``after`` and never build one."""
    return base64.urlsafe_b64encode(f"j{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ``InvalidRequest`` if this server did not make it."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("j") or not text[1:].isascii() or not text[1:].isdigit() \
                or len(text) > 19:
            raise ValueError
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("the cursor 'after' is not one this server gave") from None

