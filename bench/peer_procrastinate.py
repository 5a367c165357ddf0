"""The procrastinate peer of bench/peers.py: a no-op task on PostgreSQL, its worker and producers.

  python bench/peer_procrastinate.py worker    (started by peers.py, configured by environment)

One worker of ``concurrency`` jobs with LISTEN/NOTIFY on (its 5 s fallback poll never fires
in a run), psycopg 3 with procrastinate's own pool defaults (psycopg_pool's 4 connections)
in the worker and in the producers' process. Succeeded jobs stay in ``procrastinate_jobs``
(procrastinate's default), where the orchestrator counts them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import psycopg
from procrastinate import App, PsycopgConnector

from _peer import POLL_S, Result, produce, touch, worker

COUNT_SQL = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"


def make_app(dsn: str) -> App:
    app = App(connector=PsycopgConnector(conninfo=dsn))
    app.task(name="noop")(noop)
    return app


async def noop(n: int) -> int:
    return n


async def serve() -> None:
    """Run procrastinate's worker until SIGTERM or SIGINT."""
    concurrency = int(os.environ["BENCH_WORKERS"])
    app = make_app(os.environ["BENCH_PG"])
    async with app.open_async():
        touch("BENCH_READY")
        await app.run_worker_async(concurrency=concurrency, listen_notify=True, wait=True)


def run(dsn: str, setup: str, jobs: int, workers: int, producers: int,
        timeout_s: float) -> Result:
    """Enqueue ``jobs`` no-op tasks from ``producers`` tasks; time until all have succeeded."""
    asyncio.run(apply_schema(dsn))
    with worker("peer_procrastinate", jobs, {"BENCH_PG": dsn, "BENCH_WORKERS": str(workers)}), \
            psycopg.connect(dsn, autocommit=True) as conn:
        async def enqueue_all() -> tuple[float, float]:
            app = make_app(dsn)
            task = app.tasks["noop"]
            async with app.open_async():
                return await produce(jobs, producers, lambda n: task.defer_async(n=n))

        started, enqueue_s = asyncio.run(enqueue_all())
        deadline = started + timeout_s
        while (done := conn.execute(COUNT_SQL).fetchone()[0]) < jobs \
                and time.monotonic() < deadline:
            time.sleep(POLL_S)
        total_s = time.monotonic() - started
    return Result("procrastinate", setup, done, enqueue_s, total_s)


async def apply_schema(dsn: str) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    asyncio.run(serve())
