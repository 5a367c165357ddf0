"""``Client``: the async client driven from a private event loop, for code without one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from .aio import DEFAULT_URL, AsyncClient
from .types import Job

T = TypeVar("T")


class Client:
    """The same client for code without an event loop: each call blocks until answered.

    It drives an ``AsyncClient`` on a private event loop in a daemon thread, so both
    behave the same. Close it (or use ``with``) to stop the thread.
    """

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None,
                 timeout_s: float = 30.0, poll_s: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aioqueue-client",
                                        daemon=True)
        self._thread.start()
        self._async = AsyncClient(url, token=token, timeout_s=timeout_s, poll_s=poll_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the private loop; calling it again does nothing."""
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            # an iterator dropped after close() has nothing left to clean up on the loop
            if not self._loop.is_closed():
                self._run(agen.aclose())  # type: ignore[attr-defined]

    def submit(self, process: str, data: Any = None, *, wait: float = 0,
               priority: int | None = None, idempotency_key: str | None = None,
               delay: float | None = None, depends_on: Sequence[str] = ()) -> Job:
        """See ``AsyncClient.submit``."""
        return self._run(self._async.submit(process, data, wait=wait, priority=priority,
                                            idempotency_key=idempotency_key, delay=delay,
                                            depends_on=depends_on))

    def get(self, job_id: str) -> Job:
        return self._run(self._async.get(job_id))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """See ``AsyncClient.wait``."""
        return self._run(self._async.wait(job_id, timeout))

    def cancel(self, job_id: str) -> Job:
        return self._run(self._async.cancel(job_id))

    def pause(self, job_id: str) -> Job:
        return self._run(self._async.pause(job_id))

    def resume(self, job_id: str) -> Job:
        return self._run(self._async.resume(job_id))

    def delete(self, job_id: str) -> None:
        self._run(self._async.delete(job_id))

    def list(self, *, process: str | None = None, state: str | None = None,
             page_size: int = 100, limit: int | None = None) -> Iterator[Job]:
        """See ``AsyncClient.list``."""
        return self._iterate(self._async.list(process=process, state=state,
                                              page_size=page_size, limit=limit))

    def events(self, job_id: str | None = None) -> Iterator[Job]:
        return self._iterate(self._async.events(job_id))

    def watch(self, job_id: str, *, interval_s: float = 0.5) -> Iterator[Job]:
        return self._iterate(self._async.watch(job_id, interval_s=interval_s))

    def schedules(self) -> list[dict[str, Any]]:
        return self._run(self._async.schedules())

    def schedule(self, name: str) -> dict[str, Any]:
        return self._run(self._async.schedule(name))

    def put_schedule(self, name: str, process: str, **fields: Any) -> dict[str, Any]:
        """See ``AsyncClient.put_schedule``."""
        return self._run(self._async.put_schedule(name, process, **fields))

    def delete_schedule(self, name: str) -> None:
        self._run(self._async.delete_schedule(name))

    def pause_schedule(self, name: str) -> dict[str, Any]:
        return self._run(self._async.pause_schedule(name))

    def resume_schedule(self, name: str) -> dict[str, Any]:
        return self._run(self._async.resume_schedule(name))

    def trigger_schedule(self, name: str) -> Job:
        return self._run(self._async.trigger_schedule(name))

    def processes(self) -> list[dict[str, Any]]:
        return self._run(self._async.processes())

    def health(self) -> dict[str, Any]:
        return self._run(self._async.health())
