"""Commit latency of the SQLite store, one write at a time: where the return_timeout tail is.

What ``return_timeout`` on ``echo`` at one client does to the store, without HTTP: insert a
running job, wait for its commit, end it, wait for that commit; each commit timed alone.
Run once with SQLite's automatic checkpoint on the commit path (``wal_autocheckpoint=1000``,
SQLite's default) and once as the store runs now (checkpoints on their own thread):
  python bench/commits.py [--jobs 3000] [--rounds 2]
Each round uses a fresh file with ``synchronous=FULL``. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioqueue.models import Job, JobState, new_job_id, now_ms  # noqa: E402
from aioqueue.store.sqlite import SQLiteStore  # noqa: E402


def _job() -> Job:
    now = now_ms()
    return Job(id=new_job_id(), process="echo", state=JobState.RUNNING, input=b'{"a":1}',
               result=None, error=None, progress=None, attempts=1, max_attempts=1, priority=0,
               created_at_ms=now, scheduled_at_ms=now, started_at_ms=now, ended_at_ms=None,
               owner=None, idempotency_key=None, request_hash=None, callback_url=None,
               notify_email=None)


async def _run(path: str, jobs: int, on_commit_path: bool
               ) -> tuple[list[float], list[float]]:
    store = SQLiteStore(path, synchronous="FULL")
    await store.open()
    if on_commit_path:
        await store._checkpoints.stop()  # the old way: SQLite checkpoints inside a commit
        await store._writer.execute("PRAGMA wal_autocheckpoint=1000")
    times: list[float] = []
    checkpointed: list[float] = []  # commits during which the database file was written
    written = os.stat(path).st_mtime_ns
    try:
        for _ in range(jobs):
            job = _job()
            for write in (lambda: store.insert([job]),
                          lambda: store.finish(job, JobState.SUCCESS, result=b"{}", error=None,
                                               ended_at_ms=now_ms())):
                started = time.perf_counter()
                await write()
                took = time.perf_counter() - started
                times.append(took)
                mtime = os.stat(path).st_mtime_ns
                if mtime != written:
                    written = mtime
                    checkpointed.append(took)
    finally:
        await store.close()
    return times, checkpointed


def _figures(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    q = statistics.quantiles(ms, n=1000)
    over = sum(1 for t in ms if t > 10)
    return (f"p50 {q[499]:.2f}  p99 {q[989]:.2f}  p99.9 {q[998]:.2f}  max {ms[-1]:.1f} ms  "
            f"commits over 10 ms: {over}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for round_no in range(1, args.rounds + 1):
        for name, on_path in (("checkpoint in the commit (autocheckpoint=1000)", True),
                              ("checkpoint on its own thread", False)):
            with tempfile.TemporaryDirectory(prefix="aioqueue-commits-") as tmp:
                times, checkpointed = asyncio.run(
                    _run(os.path.join(tmp, "c.db"), args.jobs, on_path))
            print(f"round {round_no}, {name:<48} {_figures(times)}", flush=True)
            if checkpointed:
                print(f"  {len(checkpointed)} commits saw the database file written meanwhile: "
                      f"median {statistics.median(checkpointed) * 1000:.1f} ms, "
                      f"max {max(checkpointed) * 1000:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
