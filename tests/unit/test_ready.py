"""The pool's queue of claimed jobs: smallest first, idle workers woken in turn, and a
worker cancelled after it was woken passes the item on instead of losing a wake-up."""

from __future__ import annotations

import asyncio

from aioqueue.engine.ready import Ready


async def test_items_come_out_smallest_first_and_a_get_waits_for_a_put():
    ready: Ready[int] = Ready()
    for item in (3, 1, 2):
        ready.put(item)
    assert [await ready.get() for _ in range(3)] == [1, 2, 3]
    waiting = asyncio.ensure_future(ready.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    ready.put(7)
    assert await asyncio.wait_for(waiting, 5) == 7 and len(ready) == 0


async def test_a_worker_cancelled_after_its_wake_up_passes_the_item_on():
    ready: Ready[int] = Ready()
    first = asyncio.ensure_future(ready.get())
    second = asyncio.ensure_future(ready.get())
    await asyncio.sleep(0)  # both wait, first in line first
    ready.put(1)  # wakes the first...
    first.cancel()  # ...which leaves before it takes the item
    assert await asyncio.wait_for(second, 5) == 1
    assert first.cancelled()
