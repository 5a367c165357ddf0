"""The claimed jobs waiting for a worker, and the idle workers waiting for a job.

``asyncio.PriorityQueue`` did this, at the price of its size limit, its count of unfinished
tasks and an event cleared at every put, none of which the pool uses: every job passes
here, put once by its claim and taken once by a worker.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Ready(Generic[T]):
    """Items taken smallest first; a ``get`` on none waits for the next ``put``."""

    __slots__ = ("_heap", "_idle")

    def __init__(self) -> None:
        self._heap: list[T] = []
        self._idle: deque[asyncio.Future] = deque()  # the workers waiting, oldest first

    def __len__(self) -> int:
        return len(self._heap)

    def put(self, item: T) -> None:
        heapq.heappush(self._heap, item)
        self._wake_one()

    async def get(self) -> T:
        heap = self._heap
        while not heap:
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                try:
                    self._idle.remove(waiter)
                except ValueError:
                    pass
                if heap and not waiter.cancelled():
                    self._wake_one()  # woken for an item, but leaving: pass it on
                raise
        return heapq.heappop(heap)

    def _wake_one(self) -> None:
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
