"""What a batch handler saves per job against the same work done one job at a time.

The work: store each job's input as a row in a SQLite file of its own with a durable commit
(``synchronous=FULL``), the kind of per-call cost (a commit, a connection, a round trip)
that batching shares. ``one`` commits once per job; ``many`` (``batch_size``) commits once
per batch. ``one-noop`` and ``many-noop`` do no work at all, which leaves the queue's own
cost per job (claims, ends, commits). All run through the real engine and store on a
temporary database; the figures are wall-clock and CPU time per job over the whole run,
from bulk submission to the last job's end.

    python bench/batch.py [--jobs 2000] [--batch-size 100] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.models import Job
from aioqueue.store.sqlite import SQLiteStore


def _sink(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS rows (value INTEGER)")
    return conn


def _registry(folder: Path, batch_size: int) -> Registry:
    registry = Registry()
    lock = asyncio.Lock()

    @registry.process("one", description="one commit per job")
    async def one(ctx, value):
        async with lock:  # one writer at a time, as with any SQLite file
            await asyncio.to_thread(_write, folder / "one.db", [value])
        return value

    @registry.process("many", description="one commit per batch", batch_size=batch_size)
    async def many(ctx, values):
        async with lock:
            await asyncio.to_thread(_write, folder / "many.db", values)
        return values

    @registry.process("one-noop", description="nothing, one job per call")
    async def one_noop(ctx, value):
        return value

    @registry.process("many-noop", description="nothing, a batch per call", batch_size=batch_size)
    async def many_noop(ctx, values):
        return values

    return registry


def _write(path: Path, values: list[int]) -> None:
    conn = _sink(path)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO rows VALUES (?)", [(v,) for v in values])
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _run(process: str, jobs: int, batch_size: int, workers: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = SQLiteStore(str(folder / "queue.db"))
        await store.open()
        done = asyncio.Event()
        ended = 0

        def on_change(job: Job) -> None:
            nonlocal ended
            if job.terminal:
                ended += 1
                if ended == jobs:
                    done.set()

        engine = Engine(store, _registry(folder, batch_size),
                        EngineSettings(workers=workers), on_change=on_change)
        await engine.start()
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, jobs, 1000):
            await engine.submit_bulk(process, list(range(start, min(jobs, start + 1000))))
        await asyncio.wait_for(done.wait(), 600)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await engine.drain(1)
        commits = store.commits
        await store.close()
        return wall, cpu, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    print(f"{args.jobs} jobs, {args.workers} workers, batch_size {args.batch_size}")
    print(f"{'handler':<10} {'wall s':>8} {'jobs/s':>9} {'wall/job ms':>12} "
          f"{'cpu/job ms':>11} {'queue commits':>14}")
    results = {}
    for process in ("one", "many", "one-noop", "many-noop"):
        wall, cpu, commits = asyncio.run(_run(process, args.jobs, args.batch_size, args.workers))
        results[process] = wall
        print(f"{process:<10} {wall:>8.2f} {args.jobs / wall:>9.0f} "
              f"{1000 * wall / args.jobs:>12.3f} {1000 * cpu / args.jobs:>11.3f} {commits:>14}")
    for work in ("", "-noop"):
        one, many = results["one" + work], results["many" + work]
        what = "the SQLite work" if not work else "no work (the queue's own cost)"
        print(f"with {what}: a batch handler costs {many / one:.1%} of one-by-one per job "
              f"({one / many:.1f}x fewer seconds)")


if __name__ == "__main__":
    main()
