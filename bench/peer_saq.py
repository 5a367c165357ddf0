"""The saq peer of bench/peers.py: a no-op job on Redis, its worker and its producers.

  python bench/peer_saq.py worker    (started by peers.py, configured by environment)

The worker runs ``concurrency`` jobs at once; each slot waits on Redis with a blocking
move (BLMOVE), so saq has no poll interval to set. Results are kept, as saq does by default.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from saq import Queue, Worker

from _peer import DoneCounter, Enqueue, Result, run_signalled, touch


async def noop(ctx: dict, *, n: int) -> int:
    return n


async def serve() -> None:
    """Run saq's worker until SIGTERM or SIGINT, as saq's own CLI does."""
    counter = DoneCounter()
    queue = Queue.from_url(os.environ["BENCH_REDIS"])

    async def startup(ctx: dict) -> None:
        touch("BENCH_READY")

    async def after_process(ctx: dict) -> None:
        counter.ended()

    saq_worker = Worker(queue, functions=[noop], concurrency=int(os.environ["BENCH_WORKERS"]),
                        startup=startup, after_process=after_process)
    await queue.connect()
    try:
        await saq_worker.start()
    finally:
        await queue.disconnect()


@asynccontextmanager
async def connect(redis_url: str) -> AsyncIterator[Enqueue]:
    """saq's producer side: a queue, and its ``enqueue`` of the no-op."""
    queue = Queue.from_url(redis_url)
    await queue.connect()
    try:
        yield lambda n: queue.enqueue("noop", n=n)
    finally:
        await queue.disconnect()


def run(redis_url: str, setup: str, jobs: int, workers: int, producers: int,
        timeout_s: float) -> Result:
    """Enqueue ``jobs`` no-op jobs from ``producers`` tasks; time until the worker ran them all."""
    env = {"BENCH_REDIS": redis_url, "BENCH_WORKERS": str(workers)}
    return run_signalled("saq", setup, jobs, env, producers, timeout_s,
                         lambda: connect(redis_url))


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    asyncio.run(serve())
