"""Run rate without HTTP: N no-op jobs stored beforehand, then the real server started on them.

  python bench/drain.py [--jobs 20000] [--workers 16]

Puts N due `echo` jobs in a fresh database through the store's own insert, starts the
server on it and times how long until every job is terminal. Set beside peers.py, it shows
how much of aioqueue's end-to-end cost is the HTTP submit. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from _harness import free_port, stop
from aioqueue.models import Job, JobState, new_job_id, now_ms
from aioqueue.store.sqlite import SQLiteStore
from core import wait_all_terminal


async def fill(path: str, count: int) -> None:
    store = SQLiteStore(path)
    await store.open()
    now = now_ms()
    await store.insert([
        Job(id=new_job_id(), process="echo", state=JobState.QUEUED, input=b'{"n":1}',
            result=None, error=None, progress=None, attempts=0, max_attempts=1, priority=0,
            created_at_ms=now, scheduled_at_ms=now, started_at_ms=None, ended_at_ms=None)
        for _ in range(count)
    ])
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aioqueue-drain-") as tmp:
        db = os.path.join(tmp, "drain.db")
        asyncio.run(fill(db, args.jobs))
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "aioqueue", "serve", "--port", str(free_port()), "--db", db,
             "--workers", str(args.workers), "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            total, finished = wait_all_terminal(db, at_least=args.jobs)
        finally:
            stop(proc)
    print(f"{total} stored no-op jobs run in {finished - started:.2f} s (start-up included): "
          f"{total / (finished - started):.0f} jobs/s")


if __name__ == "__main__":
    main()
