"""A count of jobs queued (and drains begun), so a batch collector misses none of them."""

from __future__ import annotations

import asyncio


class Arrivals:
    """A collector notes ``count`` before it claims; if anything arrived meanwhile, ``wait``
    returns at once instead of sleeping through an arrival it did not see."""

    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        self.count += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, timeout_s: float) -> None:
        """Return at the first arrival after ``seen``, or after ``timeout_s``."""
        if self.count != seen:
            return
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            pass
