"""The same no-op workload on aioqueue and on its peers, in one run: jobs/s and the ratios.

  python bench/peers.py [--jobs 10000] [--workers 16] [--db postgresql://user:pw@127.0.0.1/db]
                        [--peers huey,arq,saq,procrastinate] [--redis durable,memory]
                        [--loop asyncio,uvloop]

Every run is end to end: timed from the first enqueue until the last job's end is stored,
with the enqueue rate beside it. aioqueue gets its jobs over HTTP from wrk (64 connections)
and runs on SQLite, and with ``--db`` also on a fresh database on that PostgreSQL server.
huey runs on SQLite; arq and saq on a redis-server started here, once per ``--redis`` mode;
procrastinate (only with ``--db``) on a fresh database on the same PostgreSQL server. Each
peer has ``--workers`` concurrent jobs in one worker process and ``--producers`` concurrent
producers (huey: 8 threads). How each is configured: bench/README.md. Nothing is asserted.
``--loop`` runs aioqueue once on each event loop named (``asyncio,uvloop``: both, in one run;
the hello-world ceiling is taken on the first).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import tempfile
import time

from _harness import (UNLIMITED, aioqueue_server, hello_server, is_postgres, pg_database,
                      require_module, require_wrk, stop, wrk)
from _peer import POLL_S, Result
from _services import REDIS_MODES, redis_server, require_redis
from core import terminal_counter

PEERS = ("huey", "arq", "saq", "procrastinate")
REDIS_SETUP = {"durable": "Redis, AOF fsync always", "memory": "Redis, in memory"}

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


def run_aioqueue(setup: str, jobs: int, workers: int, pg: str | None, timeout_s: float,
                 loop: str = "asyncio") -> Result:
    """``jobs`` submits over HTTP by wrk; timed until every stored job is terminal."""
    config = UNLIMITED + f'[server]\nevent_loop = "{loop}"\n'
    with aioqueue_server(workers=workers, pg=pg, config=config) as (url, db, _), \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(STOP_AFTER)
        script.flush()
        started = time.monotonic()
        load = subprocess.Popen([require_wrk(), "-t1", "-c64", f"-d{int(timeout_s)}s",
                                 "-s", script.name, f"{url}/async-process/?process=echo"],
                                stdout=subprocess.DEVNULL, env={**os.environ, "JOBS": str(jobs)})
        try:
            total, stored_at, ended_at = watch(db, jobs, started + timeout_s)
        finally:
            stop(load)
    setup += "" if loop == "asyncio" else f", {loop}"
    return Result("aioqueue", setup, total, stored_at - started, ended_at - started)


def watch(db: str, jobs: int, deadline: float) -> tuple[int, float, float]:
    """Poll the store every 20 ms; returns the jobs stored, when the ``jobs``-th was stored
    and when all were terminal (``time.monotonic``; the deadline where either never came)."""
    stored_at = None
    with terminal_counter(db) as count:
        while True:
            total, ended = count()
            now = time.monotonic()
            if stored_at is None and total >= jobs:
                stored_at = now
            if (stored_at and total == ended) or now > deadline:
                return total, stored_at or now, now
            time.sleep(POLL_S)


def run_huey(jobs: int, workers: int, timeout_s: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="aioqueue-bench-huey-") as tmp:
        os.environ["HUEY_DB"] = os.path.join(tmp, "huey.db")
        import peer_huey

        return peer_huey.run("SQLite, fsync", jobs, workers, timeout_s)


def pg_setup(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        version = conn.info.server_version // 10000
        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return f"PostgreSQL {version}, synchronous_commit={sync}"


def check_requirements(peers: list[str], args: argparse.Namespace) -> None:
    """Stop before anything runs when a peer's package or server is missing."""
    require_wrk()
    for peer in peers:
        require_module("psycopg" if peer == "procrastinate" else peer)
        if peer == "procrastinate":
            require_module("procrastinate")
    if {"arq", "saq"} & set(peers):
        require_redis()
    if args.db:
        require_module("psycopg")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=16, help="concurrent jobs in each worker")
    parser.add_argument("--producers", type=int, default=64,
                        help="concurrent producers for arq, saq and procrastinate")
    parser.add_argument("--db", metavar="postgresql://...",
                        help="also run aioqueue, and procrastinate, on this PostgreSQL server "
                             "(its role needs CREATEDB: each run gets a fresh database)")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--redis", default="durable,memory",
                        help=f"Redis modes for arq and saq, of {', '.join(REDIS_MODES)}")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per peer at most")
    parser.add_argument("--loop", default="asyncio",
                        help="aioqueue's event loops, of asyncio, uvloop (comma-separated)")
    args = parser.parse_args()
    loops = [loop for loop in args.loop.split(",") if loop]
    peers = [p for p in args.peers.split(",") if p]
    modes = [m for m in args.redis.split(",") if m]
    if unknown := ((set(peers) - set(PEERS)) | (set(modes) - set(REDIS_MODES))
                   | (set(loops) - {"asyncio", "uvloop"})):
        parser.error(f"unknown peer, Redis mode or loop: {', '.join(sorted(unknown))}")
    if args.db and not is_postgres(args.db):
        parser.error("--db takes a postgresql:// URL")
    if "procrastinate" in peers and not args.db:
        print("procrastinate left out: it needs --db postgresql://...")
        peers.remove("procrastinate")
    check_requirements(peers, args)
    n, w, t = args.jobs, args.workers, args.timeout

    with hello_server(loops[0]) as url:
        ceiling = wrk(f"{url}/async-process/?process=echo", connections=64, seconds=5,
                      method="POST", body='{"n": 1}')
    results = [run_aioqueue("SQLite, synchronous=FULL", n, w, None, t, loop) for loop in loops]
    if args.db:
        results += [run_aioqueue(pg_setup(args.db), n, w, args.db, t, loop) for loop in loops]
    if "huey" in peers:
        results.append(run_huey(n, w, t))
    for mode in modes:
        for peer in ("arq", "saq"):
            if peer in peers:
                module = importlib.import_module(f"peer_{peer}")
                with redis_server(mode) as redis_url:
                    results.append(module.run(redis_url, REDIS_SETUP[mode], n, w,
                                              args.producers, t))
    if "procrastinate" in peers:
        import peer_procrastinate

        with pg_database(args.db, "procrastinate") as dsn:
            results.append(peer_procrastinate.run(dsn, pg_setup(dsn), n, w, args.producers, t))
    report(results, ceiling["rps"], n)


def report(results: list[Result], ceiling_rps: float, jobs: int) -> None:
    """One line per run, then each aioqueue run's ratio against every peer."""
    print(f"hello-world ceiling (POST, req/s): {ceiling_rps:.0f}; {jobs} no-op jobs each")
    print(f"{'peer':<14}{'store':<40}{'done':>7}{'enqueue/s':>11}{'jobs/s':>9}")
    for r in results:
        print(f"{r.name:<14}{r.setup:<40}{r.done:>7}{r.done / r.enqueue_s:>11.0f}{r.rate:>9.0f}"
              + ("" if r.done >= jobs else "  (did not finish within --timeout)"))
    ours = [r for r in results if r.name == "aioqueue"]
    for peer in (r for r in results if r.name != "aioqueue"):
        ratios = ", ".join(f"on {r.setup.split(',')[0]}{' uvloop' * r.setup.endswith('uvloop')}"
                           f" {r.rate / peer.rate:.2f}x"
                           for r in ours if peer.rate)
        print(f"aioqueue / {peer.name} ({peer.setup}): {ratios}")


if __name__ == "__main__":
    main()
