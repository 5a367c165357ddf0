"""One million stored jobs: database size, start-up, memory, GET and list latency, purge.

  python bench/scale.py [--jobs 1000000]

Fills a database through the store's own insert (in large batches), starts the real
server on it, and measures: file size, time from spawn to answering /health, RSS, GET
and list-page latency (p50/p99 over sequential requests, against the same figures on a
1,000-job database, to show they do not grow with the table), and how long the retention
purge takes to empty the terminal jobs. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import orjson

from _harness import free_port, stop
from aioqueue.models import Job, JobState, new_job_id, now_ms
from aioqueue.store.sqlite import SQLiteStore

DAY_MS = 86_400_000


async def fill(path: str, count: int) -> list[str]:
    """``count`` jobs: 90% ended eight days ago, 10% queued for next year. Returns some ids."""
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    sample: list[str] = []
    now = now_ms()
    batch = 20_000
    for start in range(0, count, batch):
        jobs = []
        for n in range(start, min(count, start + batch)):
            ended = n % 10 != 0
            job_id = new_job_id()
            jobs.append(Job(
                id=job_id, process="echo", state=JobState.SUCCESS if ended else JobState.QUEUED,
                input=b'{"n":1}', result=b'{"n":1}' if ended else None, error=None,
                progress=None, attempts=1 if ended else 0, max_attempts=1, priority=0,
                created_at_ms=now - 8 * DAY_MS, scheduled_at_ms=now + 365 * DAY_MS * (not ended),
                started_at_ms=now - 8 * DAY_MS if ended else None,
                ended_at_ms=now - 8 * DAY_MS if ended else None,
            ))
            if random.random() < 2000 / count:
                sample.append(job_id)
        await store.insert(jobs)
    await store.close()
    return sample


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_get(url: str) -> float:
    started = time.perf_counter()
    try:
        urllib.request.urlopen(url, timeout=30).read()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise
    return (time.perf_counter() - started) * 1000


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms"


def measure(path: str, ids: list[str], label: str, extra: list[str]) -> None:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioqueue", "serve", "--port", str(port), "--db", path,
         "--log-level", "WARNING", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.perf_counter() - started > 60:
                    raise RuntimeError("the server did not start")
                time.sleep(0.005)
        startup = time.perf_counter() - started
        gets = [timed_get(f"{base}/async-process/{random.choice(ids)}") for _ in range(500)]
        firsts = [timed_get(f"{base}/async-process/?limit=50") for _ in range(200)]
        cursor = orjson.loads(urllib.request.urlopen(f"{base}/async-process/?limit=1000").read())
        deep = []
        for _ in range(50):
            if not cursor.get("next"):
                break
            started_page = time.perf_counter()
            cursor = orjson.loads(urllib.request.urlopen(
                f"{base}/async-process/?limit=50&after={cursor['next']}").read())
            deep.append((time.perf_counter() - started_page) * 1000)
        by_state = [timed_get(f"{base}/async-process/?state=queued&limit=50") for _ in range(100)]
        print(f"[{label}] start-up to /health: {startup:.3f} s, RSS after start "
              f"{rss_mb(proc.pid):.1f} MB")
        print(f"[{label}] GET job:             {percentiles(gets)}")
        print(f"[{label}] list, first page:    {percentiles(firsts)}")
        if len(deep) > 2:
            print(f"[{label}] list, next pages:    {percentiles(deep)}")
        print(f"[{label}] list ?state=queued:  {percentiles(by_state)}")
        print(f"[{label}] RSS after the reads: {rss_mb(proc.pid):.1f} MB")
    finally:
        stop(proc)


def purge(path: str, extra: list[str]) -> None:
    """Start with a short retention and time until no terminal job is left."""
    import sqlite3

    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write("[retention]\nterminal_s = 86400\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioqueue", "serve", "--port", str(port), "--db", path,
         "--config", cfg.name, "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < 600:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM jobs WHERE state IN ('success', 'failure')").fetchone()[0]
            if left == 0:
                break
            time.sleep(0.2)
        print(f"purge of the terminal jobs: {time.perf_counter() - started:.1f} s "
              f"({left} left), RSS {rss_mb(proc.pid):.1f} MB")
    finally:
        stop(proc)
        os.unlink(cfg.name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--skip-purge", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aioqueue-scale-") as tmp:
        small, large = os.path.join(tmp, "small.db"), os.path.join(tmp, "large.db")
        small_ids = asyncio.run(fill(small, 1000))
        started = time.perf_counter()
        large_ids = asyncio.run(fill(large, args.jobs))
        size = sum(os.path.getsize(large + s) for s in ("", "-wal") if os.path.exists(large + s))
        print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s; "
              f"database {size / 2**20:.0f} MB ({size / args.jobs:.0f} bytes a job)")
        measure(small, small_ids, "1k jobs", [])
        measure(large, large_ids, f"{args.jobs // 1000}k jobs", [])
        if not args.skip_purge:
            purge(large, [])


if __name__ == "__main__":
    main()
