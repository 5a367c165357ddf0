"""Submissions while ``aioqueue backup`` copies the live database: how much do they wait?

    .venv/bin/python bench/backup.py [--seed-mb 64]

A server gets a database of about ``--seed-mb`` MB, then 32 clients submit ``echo`` jobs
without pause; after two seconds ``aioqueue backup`` copies the database. Printed: the
copy's size, steps and duration, and the submission latency (p50, p99, max) of the requests
sent during the copy against those sent in the two seconds before and after it (the
baseline of the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packaging"))

from budgets import free_port, start_timed, stop  # noqa: E402

CLIENTS = 32
PAD = "x" * 2000
#: seconds of submissions measured before and after the copy
WINDOW_S = 2.0
#: items per bulk submission, under the 1 MiB body limit
BULK = 400


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return f"p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms " \
           f"({len(ordered)} requests)"


async def _run(url: str, db: str, dest: str, seed_mb: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        bulks = max(1, seed_mb * 10**6 // (BULK * len(PAD) * 2))  # input and result: 2x
        while bulks:
            async with http.post(f"{url}/async-process/bulk?process=echo",
                                 json={"items": [PAD] * BULK}) as resp:
                if resp.status == 429:  # the backlog is full: let the workers catch up
                    await asyncio.sleep(0.2)
                    continue
                assert resp.status == 202, await resp.text()
                bulks -= 1
        while True:  # the seed's jobs done, so they do not weigh on the baseline
            async with http.get(f"{url}/async-process/?state=queued&limit=1") as resp:
                if not (await resp.json())["jobs"]:
                    break
            await asyncio.sleep(0.2)
        samples: list[tuple[float, float]] = []  # (sent at, seconds to the answer)
        stop_at = asyncio.Event()

        async def client() -> None:
            while not stop_at.is_set():
                sent = time.monotonic()
                async with http.post(f"{url}/async-process/?process=echo", json=1) as resp:
                    await resp.read()
                samples.append((sent, time.monotonic() - sent))

        clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        await asyncio.sleep(WINDOW_S)
        began = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioqueue", "backup", "--db", db, dest,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        ended = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        stop_at.set()
        await asyncio.gather(*clients)
    before = [s for at, s in samples if at < began]
    during = [s for at, s in samples if began <= at < ended]
    after = [s for at, s in samples if at >= ended]
    print(out.decode().strip())
    print(f"copy of {os.path.getsize(dest) / 1e6:.1f} MB took {ended - began:.2f} s "
          f"(including the process's start)")
    print(f"submissions before the copy: {_percentiles(before)}")
    print(f"submissions during the copy: {_percentiles(during)}")
    print(f"submissions after the copy:  {_percentiles(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-mb", type=int, default=64, help="database size (default 64)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aioqueue-backup-") as tmp:
        db, port = os.path.join(tmp, "live.db"), free_port()
        proc, _ = start_timed([sys.executable, "-m", "aioqueue", "serve", "--port", str(port),
                               "--db", db, "--log-level", "WARNING", "--workers", "8"], port)
        try:
            asyncio.run(_run(f"http://127.0.0.1:{port}", db, os.path.join(tmp, "copy.db"),
                             args.seed_mb))
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
