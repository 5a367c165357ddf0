"""The same no-op workload on aioqueue and on huey (SQLite storage), in one run.

  python bench/peers.py [--jobs 20000] [--workers 16]

aioqueue: N jobs submitted over HTTP by wrk (64 connections), timed from the first submit
until every job is terminal in the database. huey: N tasks enqueued by 8 producer threads
into huey's SQLite storage (fsync on, like aioqueue's default synchronous=FULL) and run by
its own consumer (threads), timed until N results are stored. Also prints the aiohttp
hello-world ceiling measured with the same wrk settings. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from _harness import HERE, aioqueue_server, hello_server, require_wrk, stop, wrk
from core import wait_all_terminal

STOP_AFTER = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"n": 1}'
local answered = 0
local limit = tonumber(os.getenv("JOBS"))
response = function(status, headers, body)
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
end
"""


def run_aioqueue(jobs: int, workers: int) -> tuple[int, float]:
    with aioqueue_server(workers=workers) as (url, db, _), \
            tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(STOP_AFTER)
        script.flush()
        started = time.monotonic()
        load = subprocess.Popen([require_wrk(), "-t1", "-c64", "-d120s", "-s", script.name,
                                 f"{url}/async-process/?process=echo"],
                                stdout=subprocess.DEVNULL, env={**os.environ, "JOBS": str(jobs)})
        try:
            total, finished = wait_all_terminal(db, at_least=jobs)
        finally:
            load.terminate()
            load.wait()
    os.unlink(script.name)
    return total, finished - started


def run_huey(jobs: int, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="huey-bench-") as tmp:
        env = {**os.environ, "HUEY_DB": os.path.join(tmp, "huey.db"),
               "PYTHONPATH": str(HERE)}
        os.environ["HUEY_DB"] = env["HUEY_DB"]
        sys.path.insert(0, str(HERE))
        import huey_tasks

        consumer = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "huey_tasks.huey", "-w", str(workers),
             "-k", "thread", "-d", "0.01", "-m", "0.1", "-q"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            producers = 8
            started = time.monotonic()

            def produce(offset: int) -> None:
                for n in range(offset, jobs, producers):
                    huey_tasks.noop(n)

            threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            deadline = time.monotonic() + 300
            while huey_tasks.huey.result_count() < jobs and time.monotonic() < deadline:
                time.sleep(0.02)
            finished = time.monotonic()
            done = huey_tasks.huey.result_count()
        finally:
            stop(consumer, signal.SIGINT)
    return done, finished - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with hello_server() as url:
        ceiling = wrk(f"{url}/async-process/?process=echo", connections=64, seconds=5,
                      method="POST", body='{"n": 1}')
    aq_jobs, aq_s = run_aioqueue(args.jobs, args.workers)
    hu_jobs, hu_s = run_huey(args.jobs, args.workers)
    aq_rate, hu_rate = aq_jobs / aq_s, hu_jobs / hu_s
    print(f"hello-world ceiling (POST, req/s)      {ceiling['rps']:.0f}")
    print(f"aioqueue  {aq_jobs} no-op jobs in {aq_s:.2f} s  {aq_rate:.0f} jobs/s "
          f"({aq_rate / ceiling['rps']:.0%} of the ceiling)")
    print(f"huey      {hu_jobs} no-op jobs in {hu_s:.2f} s  {hu_rate:.0f} jobs/s")
    print(f"ratio     aioqueue / huey = {aq_rate / hu_rate:.2f}")


if __name__ == "__main__":
    main()
