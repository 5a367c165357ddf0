"""Core benchmark: submit, end-to-end, return_timeout latency and GET, against the ceiling.

Starts each server as a subprocess and loads it with wrk from the same machine, in one run:
  python bench/core.py [--seconds 10] [--connections 64] [--db postgresql://user:pw@host/db]
                       [--loop asyncio|uvloop]
Each aioqueue server runs on a fresh SQLite file, or with ``--db`` on a fresh database made on
that PostgreSQL server (and dropped after). Prints the figures as a table; nothing is asserted.
Beside the ceiling, submit and GET it prints the server's CPU per request (every thread, from
/proc), which a busy shared machine stretches much less than it does req/s.
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

from _harness import UNLIMITED, aioqueue_server, hello_process, is_postgres, wrk
from _meter import cpu_s

TERMINAL = ("success", "failure")
COUNT_SQL = "SELECT count(*), count(*) FILTER (WHERE state IN ('success', 'failure')) FROM jobs"


@contextmanager
def terminal_counter(db: str) -> Iterator[Callable[[], tuple[int, int]]]:
    """A function that tells how many jobs the store holds, and how many are terminal."""
    if is_postgres(db):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            yield lambda: conn.execute(COUNT_SQL).fetchone()
    else:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            yield lambda: conn.execute(COUNT_SQL).fetchone()


def wait_all_terminal(db: str, timeout_s: float = 120, at_least: int = 0) -> tuple[int, float]:
    """Poll the store until at least ``at_least`` jobs exist and all are terminal."""
    deadline = time.monotonic() + timeout_s
    with terminal_counter(db) as count:
        while True:
            total, ended = count()
            if (total >= at_least and total == ended) or time.monotonic() > deadline:
                return total, time.monotonic()
            time.sleep(0.02)


def wrk_cpu(pid: int, url: str, seconds: float, **options: object) -> dict[str, float]:
    """``wrk`` as ``_harness.wrk`` runs it, plus ``us_per_req``: the server's CPU per answer."""
    before = cpu_s(pid)
    figures = wrk(url, seconds=seconds, **options)
    figures["us_per_req"] = 1e6 * (cpu_s(pid) - before) / max(figures["rps"] * seconds, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", metavar="postgresql://...",
                        help="run aioqueue on this PostgreSQL server instead of SQLite")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop of both servers (uvloop: pip install uvloop)")
    args = parser.parse_args()
    if args.db and not is_postgres(args.db):
        parser.error("--db takes a postgresql:// URL; without it each server gets a SQLite file")
    s, c = args.seconds, args.connections
    config = UNLIMITED + f'[server]\nevent_loop = "{args.loop}"\n'
    aioqueue = functools.partial(aioqueue_server, pg=args.db, config=config)
    rows: list[tuple[str, str]] = []

    with hello_process(args.loop) as (url, proc):
        ceiling = wrk_cpu(proc.pid, f"{url}/async-process/?process=echo", connections=c,
                          seconds=s, method="POST", body='{"a": 1}')
        rows.append(("hello-world ceiling (POST, req/s; us/req)",
                     f"{ceiling['rps']:.0f}; {ceiling['us_per_req']:.0f}"))
        hello_1 = wrk(f"{url}/async-process/?process=echo", connections=1, seconds=s,
                      method="POST", body='{"a": 1}')
        rows.append(("hello-world 1 client p50 / p99 (ms)",
                     f"{hello_1['p50_ms']:.2f} / {hello_1['p99_ms']:.2f}"))

    with aioqueue() as (url, db, proc):
        submit = wrk_cpu(proc.pid, f"{url}/async-process/?process=echo&delay=86400",
                         connections=c, seconds=s, method="POST", body='{"a": 1}')
        rows.append(("durable submit, 202 path (req/s; us/req)",
                     f"{submit['rps']:.0f} ({submit['rps'] / ceiling['rps']:.0%} of ceiling); "
                     f"{submit['us_per_req']:.0f}"))
        rows.append(("durable submit p50 / p99 (ms)",
                     f"{submit['p50_ms']:.2f} / {submit['p99_ms']:.2f}"))

    with aioqueue() as (url, db, _):
        started = time.monotonic()
        e2e = wrk(f"{url}/async-process/?process=echo", connections=c, seconds=s,
                  method="POST", body='{"a": 1}')
        total, finished = wait_all_terminal(db)
        rows.append(("submit while jobs run (req/s)", f"{e2e['rps']:.0f}"))
        rows.append(("end-to-end no-op jobs/s (submit to terminal)",
                     f"{total / (finished - started):.0f} ({total} jobs)"))

    with aioqueue() as (url, db, proc):
        for clients in (1, 32):
            rt = wrk(f"{url}/async-process/?process=echo&return_timeout=5", connections=clients,
                     seconds=s, method="POST", body='{"a": 1}')
            rows.append((f"return_timeout echo, {clients} client(s) p50 / p99 (ms)",
                         f"{rt['p50_ms']:.2f} / {rt['p99_ms']:.2f} ({rt['rps']:.0f} req/s)"))
        req = urllib.request.Request(f"{url}/async-process/?process=echo&return_timeout=5",
                                     data=b'{"a": 1}', headers={"Content-Type": "application/json"})
        job_id = json.load(urllib.request.urlopen(req))["id"]
        get = wrk_cpu(proc.pid, f"{url}/async-process/{job_id}", connections=c, seconds=s)
        rows.append(("GET job (req/s; us/req)",
                     f"{get['rps']:.0f} ({get['rps'] / ceiling['rps']:.0%} of ceiling); "
                     f"{get['us_per_req']:.0f}"))
        rows.append(("GET job p50 / p99 (ms)", f"{get['p50_ms']:.2f} / {get['p99_ms']:.2f}"))

    width = max(len(name) for name, _ in rows)
    print(f"{'figure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
