"""Futures of callers waiting for a job's end (``return_timeout``, long polls)."""

from __future__ import annotations

import asyncio

from ..models import Job
from .observer import JobObserver


class Waiters(JobObserver):
    """Per job, the futures to resolve with the ended job once its end is committed (an
    observer of the engine, told of every end)."""

    def __init__(self) -> None:
        self._by_job: dict[str, set[asyncio.Future]] = {}

    def add(self, job_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._by_job.setdefault(job_id, set()).add(future)
        return future

    def drop(self, job_id: str, future: asyncio.Future) -> None:
        futures = self._by_job.get(job_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._by_job[job_id]

    def watched(self) -> list[str]:
        """The jobs someone waits for now."""
        return list(self._by_job)

    def follows(self, job_id: str) -> bool:
        return job_id in self._by_job

    @staticmethod
    async def wait(future: asyncio.Future, timeout_s: float) -> Job | None:
        """The ended job, or None when ``timeout_s`` passes first."""
        done, _ = await asyncio.wait((future,), timeout=timeout_s)
        return future.result() if done else None

    def job_ended(self, job: Job) -> None:
        for future in self._by_job.get(job.id, ()):
            if not future.done():
                future.set_result(job)

    def release_all(self) -> None:
        """Answer every waiter with None (the server is stopping)."""
        for futures in self._by_job.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
