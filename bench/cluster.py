"""1, 2 and 3 servers on one PostgreSQL database with the same no-op workload, in one run.

  python bench/cluster.py [--db postgresql://aioqueue_bench:bench@127.0.0.1/aioqueue_bench]
                          [--nodes 1,2,3] [--jobs 6000] [--seconds 8] [--workers 16]
                          [--hold-s 60] [--skip-hold]

Each cluster size gets a fresh database (made and dropped here; the role needs CREATEDB)
and its servers (``bench/_node.py``, which counts the statements each one sends). The load
is spread evenly over the servers, one wrk per server, 64 connections in all:
- **end to end**: ``--jobs`` echo jobs, timed until the last one's end is stored;
- **return_timeout**: 16 connections that each submit and wait for the end, for
  ``--seconds``: requests/s, p50 and p99 (the wrk distributions merged);
- **submit only**: jobs due in an hour, for ``--seconds``; then end to end and submit only
  again on a fresh database with every NOTIFY dropped (peers' pitfall 8: does a notifying
  commit throttle inserts? and what do the other servers' reactions to notices cost?).
Beside each, per job: CPU of the servers and of the database's backends, and statements
(counted in the servers) and transactions (PostgreSQL's count) — the inputs of
docs/scaling.md. Then peers' pitfall 7 on one server: the end-to-end rate, 10 s at a
time, during ``--hold-s`` seconds with and without a transaction held open on the database,
and the dead row versions left in ``jobs``.

On a 2-core machine the servers, PostgreSQL and wrk share the cores: the figures show the
cost of coordination, not scale. Every process started here is stopped by its pid; nothing
is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from _harness import HERE, UNLIMITED, free_port, pg_database, require_wrk, server, stop
from _meter import STATS_LAG_S, Meter
from _wrk import merged, run_all
from core import COUNT_SQL
from peers import STOP_AFTER, pg_setup

import psycopg

DSN = "postgresql://aioqueue_bench:bench@127.0.0.1/aioqueue_bench"
CONNECTIONS = 64
WAITERS = 16
SLICE_S = 10


@contextmanager
def cluster(db: str, n: int, workers: int, no_notify: bool = False
            ) -> Iterator[tuple[list[str], Meter]]:
    """``n`` servers on ``db``, stopped by their pids at the end; their URLs and a meter."""
    with tempfile.TemporaryDirectory(prefix="aioqueue-bench-cluster-") as tmp, \
            ExitStack() as stack, psycopg.connect(db, autocommit=True) as conn:
        config = Path(tmp, "bench.toml")
        config.write_text(UNLIMITED)
        urls, procs = [], []
        for i in range(n):
            port, counts = free_port(), Path(tmp, f"statements-{i}")
            argv = [sys.executable, str(HERE / "_node.py"), str(counts),
                    *(["--no-notify"] if no_notify else []), "serve", "--port", str(port),
                    "--db", db, "--workers", str(workers), "--log-level", "WARNING",
                    "--config", str(config)]
            url = f"http://127.0.0.1:{port}"
            procs.append((stack.enter_context(server(argv, f"{url}/health")), counts))
            urls.append(url)
        yield urls, Meter(conn, procs)


def end_to_end(urls: list[str], meter: Meter, jobs: int, timeout_s: float) -> dict:
    """``jobs`` echo jobs over HTTP, an equal share per server; timed until all ended."""
    share = jobs // len(urls)
    before = meter.read()
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script, ExitStack() as loads:
        script.write(STOP_AFTER)
        script.flush()
        for url in urls:
            proc = subprocess.Popen(
                [require_wrk(), "-t1", f"-c{CONNECTIONS // len(urls)}", f"-d{int(timeout_s)}s",
                 "-s", script.name, f"{url}/async-process/?process=echo"],
                stdout=subprocess.DEVNULL, env={**os.environ, "JOBS": str(share)})
            loads.callback(stop, proc)
        total, stored_at, ended_at = _watch(meter, share * len(urls), started + timeout_s)
    cost = meter.read().minus(before)
    return {"jobs": total, "rps": total / (stored_at - started),
            "jobs_rps": total / (ended_at - started), **cost.per(total)}


def _watch(meter: Meter, jobs: int, deadline: float) -> tuple[int, float, float]:
    stored_at = None
    while True:
        total, ended = meter.query(COUNT_SQL)
        now = time.monotonic()
        if stored_at is None and total >= jobs:
            stored_at = now
        if (stored_at and total == ended) or now > deadline:
            return total, stored_at or now, now
        time.sleep(0.02)


def timed(urls: list[str], meter: Meter, query: str, connections: int, seconds: float) -> dict:
    """wrk POSTs on every server at once for ``seconds``: requests/s, p50/p99, cost per job."""
    before_jobs = meter.query("SELECT count(*) FROM jobs")[0]
    before = meter.read()
    runs = run_all([f"{url}/async-process/?{query}" for url in urls],
                   max(1, connections // len(urls)), seconds, body='{"n": 1}')
    cost = meter.read().minus(before)
    jobs = meter.query("SELECT count(*) FROM jobs")[0] - before_jobs
    figures = {**merged(runs), "jobs": jobs, **cost.per(jobs)}
    if "return_timeout" in query:  # each answer is a job that ended
        figures["jobs_rps"] = figures["rps"]
    return figures


def hold(db: str, workers: int, seconds: float, open_xact: bool) -> dict:
    """The end-to-end rate of one server, per 10 s, under steady load for ``seconds``; with
    ``open_xact``, a REPEATABLE READ transaction (a snapshot) stays open the whole time."""
    with cluster(db, 1, workers) as ([url], meter), \
            psycopg.connect(db, autocommit=True) as holder, ExitStack() as stack:
        if open_xact:
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT count(*) FROM jobs")  # the snapshot is taken here
        load = subprocess.Popen(
            [require_wrk(), "-t1", f"-c{CONNECTIONS // 2}", f"-d{int(seconds) + 5}s", "-s",
             _post_script(stack), f"{url}/async-process/?process=echo"],
            stdout=subprocess.DEVNULL)
        stack.callback(stop, load)
        rates, last = [], meter.query(COUNT_SQL)[1]
        for _ in range(max(1, int(seconds // SLICE_S))):
            time.sleep(SLICE_S)
            ended = meter.query(COUNT_SQL)[1]
            rates.append((ended - last) / SLICE_S)
            last = ended
        stop(load)
        time.sleep(STATS_LAG_S)  # the statistics of the last writes
        table = meter.query(
            "SELECT n_dead_tup, autovacuum_count, pg_total_relation_size(relid), "
            "(SELECT count(*) FROM jobs) FROM pg_stat_user_tables WHERE relname = 'jobs'")
        if open_xact:
            holder.execute("ROLLBACK")
    dead, vacuums, size, jobs = table
    return {"rates": rates, "dead": dead, "vacuums": vacuums, "bytes_per_job": size / jobs}


def _post_script(stack: ExitStack) -> str:
    script = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".lua"))
    script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 "wrk.body = '{\"n\": 1}'\n")
    script.flush()
    return script.name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=DSN, help="a PostgreSQL server whose role may CREATEDB")
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=16, help="concurrent jobs per server")
    parser.add_argument("--hold-s", type=float, default=60)
    parser.add_argument("--skip-hold", action="store_true", help="leave out pitfall 7")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per phase at most")
    args = parser.parse_args()
    require_wrk()
    sizes = [int(n) for n in args.nodes.split(",")]
    print(f"{pg_setup(args.db)}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f} at the "
          f"start; {args.workers} workers per server; {CONNECTIONS} connections in all")
    rows = []
    for n in sizes:
        with pg_database(args.db, f"cluster{n}") as db:
            with cluster(db, n, args.workers) as (urls, meter):
                rows.append((n, "end to end", end_to_end(urls, meter, args.jobs, args.timeout)))
                rows.append((n, "return_timeout", timed(
                    urls, meter, "process=echo&return_timeout=10", WAITERS, args.seconds)))
                rows.append((n, "submit only", timed(
                    urls, meter, "process=echo&delay=3600", CONNECTIONS, args.seconds)))
        with pg_database(args.db, f"cluster{n}q") as db, \
                cluster(db, n, args.workers, no_notify=True) as (urls, meter):
            rows.append((n, "e2e, no NOTIFY", end_to_end(urls, meter, args.jobs, args.timeout)))
            rows.append((n, "submit, no NOTIFY", timed(
                urls, meter, "process=echo&delay=3600", CONNECTIONS, args.seconds)))
    report(rows)
    if not args.skip_hold:
        held = {}
        for open_xact in (False, True):
            with pg_database(args.db, f"hold{int(open_xact)}") as db:
                held[open_xact] = hold(db, args.workers, args.hold_s, open_xact)
        report_hold(held, args.hold_s)


def report(rows: list[tuple[int, str, dict]]) -> None:
    """One line per size and workload, its rate against the smallest cluster's."""
    print(f"{'servers':<8}{'workload':<19}{'jobs':>7}{'req/s':>8}{'jobs/s':>8}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'server CPU':>11}{'PG CPU':>8}{'stmts':>7}{'xacts':>7}")
    print(f"{'':<66}{'ms/job':>11}{'ms/job':>8}{'/job':>7}{'/job':>7}")
    first: dict[str, float] = {}
    for n, workload, r in rows:
        rate = r.get("jobs_rps") or r["rps"]
        first.setdefault(workload, rate)
        print(f"{n:<8}{workload:<19}{r['jobs']:>7}{r['rps']:>8.0f}"
              + "".join(_cell(r.get(key), 8, ".0f" if key == "jobs_rps" else ".1f")
                        for key in ("jobs_rps", "p50_ms", "p99_ms"))
              + f"{r['node_ms']:>11.2f}{r['pg_ms']:>8.2f}{r['statements']:>7.1f}"
              f"{r['xacts']:>7.1f}  {rate / max(first[workload], 1e-9):.2f}x of {rows[0][0]}"
              + (f", {r['errors']} errors" if r.get("errors") else ""))
    print("req/s: the enqueue rate end to end, else requests answered; jobs/s: jobs ended")
    rates = {(n, w): r.get("jobs_rps") or r["rps"] for n, w, r in rows}
    for with_, without in (("end to end", "e2e, no NOTIFY"), ("submit only", "submit, no NOTIFY")):
        ratios = ", ".join(f"{n} server(s) {rates[n, without] / rates[n, with_]:.2f}x"
                           for n in sorted({n for n, _ in rates}) if (n, without) in rates)
        print(f"{with_} without NOTIFY / with: {ratios}")


def _cell(value: float | None, width: int, spec: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def report_hold(held: dict[bool, dict], seconds: float) -> None:
    print(f"pitfall 7, one server, {seconds:.0f} s of steady load, jobs ended per second "
          f"every {SLICE_S} s:")
    for open_xact, r in held.items():
        label = "a transaction held open" if open_xact else "no open transaction"
        rates = " ".join(f"{rate:.0f}" for rate in r["rates"])
        print(f"  {label:<24}{rates}  last/first {r['rates'][-1] / max(r['rates'][0], 1):.2f}x")
        print(f"  {'':<24}jobs table at the end: {r['dead']} dead row versions counted, "
              f"{r['vacuums']} autovacuums, {r['bytes_per_job']:.0f} bytes per job "
              "(table and indexes)")


if __name__ == "__main__":
    main()
