"""The arq peer of bench/peers.py: a no-op job on Redis, its worker and its producers.

  python bench/peer_arq.py worker    (started by peers.py, configured by environment)

The worker runs ``max_jobs`` jobs at once and polls Redis every 10 ms (arq's default is
500 ms, which would make it idle most of the run); results are kept, as arq does by default.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq import create_pool, run_worker
from arq.connections import RedisSettings

from _peer import DoneCounter, Enqueue, Result, run_signalled, touch

POLL_DELAY_S = 0.01


async def noop(ctx: dict, n: int) -> int:
    return n


def worker_settings() -> type:
    """arq's settings class, built from the environment peers.py sets."""
    counter = DoneCounter()

    async def startup(ctx: dict) -> None:
        touch("BENCH_READY")

    async def after_job_end(ctx: dict) -> None:
        counter.ended()

    return type("WorkerSettings", (), {
        "functions": [noop],
        "redis_settings": RedisSettings.from_dsn(os.environ["BENCH_REDIS"]),
        "max_jobs": int(os.environ["BENCH_WORKERS"]),
        "poll_delay": POLL_DELAY_S,
        "on_startup": startup,
        "after_job_end": after_job_end,
        "handle_signals": True,
    })


@asynccontextmanager
async def connect(redis_url: str) -> AsyncIterator[Enqueue]:
    """arq's producer side: a pool, and its ``enqueue_job`` of the no-op."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        yield lambda n: pool.enqueue_job("noop", n)
    finally:
        await pool.aclose()


def run(redis_url: str, setup: str, jobs: int, workers: int, producers: int,
        timeout_s: float) -> Result:
    """Enqueue ``jobs`` no-op jobs from ``producers`` tasks; time until the worker ran them all."""
    env = {"BENCH_REDIS": redis_url, "BENCH_WORKERS": str(workers)}
    return run_signalled("arq", setup, jobs, env, producers, timeout_s,
                         lambda: connect(redis_url))


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    run_worker(worker_settings())
