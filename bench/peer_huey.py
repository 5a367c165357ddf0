"""The huey peer of bench/peers.py: a no-op task on huey's SQLite storage, its consumer and producers.

  python bench/peer_huey.py worker    (started by peers.py, configured by environment)

``HUEY_DB`` names the SQLite file and must be set before this module is imported.

SQLite with ``fsync=True``, like aioqueue's ``synchronous = "FULL"``; a consumer of
``workers`` threads that polls from 10 ms, backing off to at most 100 ms while idle;
8 producer threads, since huey's enqueue is blocking.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from huey import SqliteHuey

from _peer import Result, touch, wait_for, worker

PRODUCER_THREADS = 8

huey = SqliteHuey("bench", filename=os.environ["HUEY_DB"], fsync=True)


@huey.task()
def noop(n: int) -> int:
    return n


def serve() -> None:
    """Run huey's consumer until SIGTERM or SIGINT, as ``huey_consumer -k thread`` does."""
    consumer = huey.create_consumer(workers=int(os.environ["BENCH_WORKERS"]),
                                    worker_type="thread", initial_delay=0.01, max_delay=0.1)
    huey.on_startup()(lambda: touch("BENCH_READY"))
    consumer.run()


def run(setup: str, jobs: int, workers: int, timeout_s: float) -> Result:
    """Enqueue ``jobs`` no-op tasks from 8 threads; time until all their results are stored."""
    with worker("peer_huey", jobs, {"BENCH_WORKERS": str(workers)}):
        def produce(offset: int) -> None:
            for n in range(offset, jobs, PRODUCER_THREADS):
                noop(n)

        started = time.monotonic()
        threads = [threading.Thread(target=produce, args=(k,)) for k in range(PRODUCER_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        enqueue_s = time.monotonic() - started
        wait_for(lambda: huey.result_count() >= jobs, timeout_s)
        total_s = time.monotonic() - started
        done = huey.result_count()
    return Result("huey", setup, done, enqueue_s, total_s)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    # huey names a task by its module: run the consumer on the module the producers import
    import peer_huey

    peer_huey.serve()
