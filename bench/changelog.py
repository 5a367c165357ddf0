"""What the change log (resumable event streams) costs the hot path, at the store.

Runs the store's own hot path, with no HTTP in the way: ``--jobs`` jobs inserted by 64
concurrent callers (group commit), claimed in batches of 64 and each finished (ends also
grouped), once with the log's triggers and once with them dropped, alternately, ``--rounds``
times each, on a fresh SQLite file and, with ``--db``, on a fresh PostgreSQL schema:
  python bench/changelog.py [--jobs 5000] [--rounds 3] [--db postgresql://user:pw@host/db]
Prints jobs/s of each run and the ratio of the medians (with / without); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioqueue.models import Job, JobState, new_job_id, now_ms  # noqa: E402
from aioqueue.store import JobStore  # noqa: E402

CONCURRENCY = 64
DROP = {
    "sqlite": ["DROP TRIGGER jobs_changes_insert", "DROP TRIGGER jobs_changes_update"],
    "postgres": ["DROP TRIGGER jobs_changes_insert ON jobs",
                 "DROP TRIGGER jobs_changes_update ON jobs"],
}


def _job() -> Job:
    now = now_ms()
    return Job(new_job_id(), "echo", JobState.QUEUED, b"{}", None, None, None, 0, 3, 0, now,
               now, None, None)


async def _cycle(store: JobStore, jobs: int) -> float:
    """Insert, claim and finish ``jobs`` jobs; returns jobs/s end to end."""
    started = time.perf_counter()
    for first in range(0, jobs, CONCURRENCY):
        await asyncio.gather(*(store.insert([_job()])
                               for _ in range(min(CONCURRENCY, jobs - first))))
    done = 0
    while done < jobs:
        claimed = await store.claim(CONCURRENCY, now_ms())
        await asyncio.gather(*(store.finish(j, JobState.SUCCESS, result=b"1", error=None,
                                            ended_at_ms=now_ms()) for j in claimed))
        done += len(claimed)
    return jobs / (time.perf_counter() - started)


async def _store(kind: str, where: str, logged: bool) -> JobStore:
    if kind == "sqlite":
        from aioqueue.store.sqlite import SQLiteStore

        store: JobStore = SQLiteStore(where)
    else:
        from aioqueue.store.postgres import PostgresStore

        store = PostgresStore(where, pool_size=10)
    await store.open()
    if not logged:
        if kind == "sqlite":
            for statement in DROP[kind]:
                await store._enqueue(statement, ())  # type: ignore[attr-defined]
        else:
            for statement in DROP[kind]:
                await store._run(lambda c, s=statement: c.execute(s))  # type: ignore
    return store


async def _side(kind: str, where: str, logged: bool, jobs: int) -> float:
    store = await _store(kind, where, logged)
    try:
        return await _cycle(store, jobs)
    finally:
        await store.close()


async def _postgres_schema(url: str, name: str, drop: bool = False) -> str:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE" if drop
                           else f"CREATE SCHEMA {name}")
    finally:
        await conn.close()
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={name}', safe='')}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", metavar="postgresql://...")
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgres"] if args.db else [])
    print(f"{args.jobs} jobs per run: insert, claim, finish; {CONCURRENCY} at once")
    for kind in kinds:
        figures: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for logged in (True, False) if round_ % 2 == 0 else (False, True):
                if kind == "sqlite":
                    with tempfile.TemporaryDirectory() as folder:
                        rate = await _side(kind, str(Path(folder) / "b.db"), logged, args.jobs)
                else:
                    name = "bench_changelog_" + uuid.uuid4().hex[:8]
                    url = await _postgres_schema(args.db, name)
                    try:
                        rate = await _side(kind, url, logged, args.jobs)
                    finally:
                        await _postgres_schema(args.db, name, drop=True)
                figures[logged].append(rate)
                print(f"{kind:8} log {'on ' if logged else 'off'} {rate:8.0f} jobs/s", flush=True)
        ratio = statistics.median(figures[True]) / statistics.median(figures[False])
        print(f"{kind:8} with the log / without: {ratio:.2f}x (medians)")


if __name__ == "__main__":
    asyncio.run(main())
