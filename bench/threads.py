"""Where a job's CPU goes, thread by thread, in two checkouts of aioqueue run in turns.

  python bench/threads.py [--mode drain|http|submit] [--jobs 10000] [--rounds 3] CHECKOUT [CHECKOUT...]

Each CHECKOUT is a folder with an ``aioqueue`` package (this one, or an older commit's
worktree); its server runs with that folder as its working directory, so ``python -m aioqueue``
imports that code, with this interpreter's libraries. The checkouts take turns, round after
round, so a noisy machine weighs on each alike.

- ``drain``: ``--jobs`` due ``echo`` jobs are stored beforehand (by that checkout's own store),
  then the server is started on them and timed until every job is terminal (start-up included).
  With ``--due-in S`` the jobs fall due S seconds after they are stored: the server starts
  while none is due yet, and its CPU and the time are counted from then on (start-up left out).
- ``http``: a fresh server gets ``--jobs`` submits from wrk (64 connections) and is timed, as
  ``peers.py`` does, from the first submit until every job is terminal.
- ``submit``: as ``http``, but each job is submitted with ``delay=86400`` (none runs): timed
  until wrk has its ``--jobs`` answers, so the figures are durable submits per second and
  the CPU of each.

Per run it prints jobs/s and the CPU each thread of the server used per job, read from
``/proc/PID/task/*/stat`` (threads named by ``py-spy dump`` where py-spy is installed; the
busier of aiosqlite's two threads is the writer). With ``--trace`` it also counts, through a
``sitecustomize`` that hooks ``sqlite3.connect``, the statements each connection ran and the
commits (slower: run it apart from the timed rounds). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _harness import UNLIMITED, free_port, require_wrk, stop, wait_http
from core import terminal_counter, wait_all_terminal
from peers import STOP_AFTER, watch

FILL = """
import asyncio, sys
from aioqueue.models import Job, JobState, new_job_id, now_ms
try:
    from aioqueue.store.sqlite import SQLiteStore as Store
except ImportError:
    from aioqueue.store import Store

async def fill(path, count, due_in_ms):
    store = Store(path)
    await store.open()
    now = now_ms() + due_in_ms
    await store.insert([
        Job(id=new_job_id(), process="echo", state=JobState.QUEUED, input=b'{"n":1}',
            result=None, error=None, progress=None, attempts=0, max_attempts=1, priority=0,
            created_at_ms=now, scheduled_at_ms=now, started_at_ms=None, ended_at_ms=None)
        for _ in range(count)])
    await store.close()

asyncio.run(fill(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

#: counts every statement each sqlite3 connection runs (and its commits), written at exit
TRACE = """
import atexit, collections, os, re, sqlite3, threading
_connect = sqlite3.connect
_counts = []

def connect(*args, **kwargs):
    conn = _connect(*args, **kwargs)
    counter = collections.Counter()
    _counts.append((threading.current_thread().name, counter))
    def trace(sql):
        text = re.sub(r"x'[0-9a-f]*'|'[^']*'|\\b\\d+\\b", "?", " ".join(sql.split()))
        counter[text[:int(os.environ.get("AIOQUEUE_TRACE_WIDTH", "60"))]] += 1
        counter["all"] += 1
    conn.set_trace_callback(trace)
    return conn

sqlite3.connect = connect

import asyncio.base_events, asyncio.events
_loop = collections.Counter()
_counts.append(("event loop", _loop))

def _counting(cls, name):
    original = getattr(cls, name)
    def wrapper(*args, **kwargs):
        _loop[name] += 1
        return original(*args, **kwargs)
    setattr(cls, name, wrapper)

for _name in ("_run_once", "create_task", "create_future", "call_soon_threadsafe", "call_at"):
    _counting(asyncio.base_events.BaseEventLoop, _name)
_counting(asyncio.events.Handle, "_run")

@atexit.register
def _dump():
    with open(os.environ["AIOQUEUE_TRACE_OUT"], "w") as fh:
        for name, counter in _counts:
            fh.write(f"{name}\\t{dict(counter)}\\n")
"""


def wait_stored(db: str, jobs: int, deadline: float) -> tuple[int, float]:
    """Poll the store until it holds ``jobs`` jobs (each one answered after its commit);
    (the jobs stored, when)."""
    with terminal_counter(db) as count:
        while True:
            total, _ = count()
            if total >= jobs or time.monotonic() > deadline:
                return total, time.monotonic()
            time.sleep(0.005)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        cpu[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return cpu


def thread_names(pid: int) -> dict[int, str]:
    """Thread id -> a short name: main, sqlite (aiosqlite's), checkpoints, or Python's name."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        return {pid: "main"}
    out = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True).stdout
    names: dict[int, str] = {}
    tid = None
    for line in out.splitlines():
        if line.startswith("Thread "):
            tid = int(line.split()[1], 0)
            names[tid] = line.rsplit('"', 2)[-2] if line.endswith('"') else "?"
        elif tid is not None and "aiosqlite" in line:
            names[tid] = "sqlite"
    for tid, name in names.items():
        if name == "MainThread":
            names[tid] = "main"
        elif "checkpoint" in name:
            names[tid] = "checkpoints"
    return names


def by_name(cpu: dict[int, float], names: dict[int, str], pid: int) -> dict[str, float]:
    """CPU seconds summed per thread name; aiosqlite's busiest thread is ``writer``."""
    sqlite = sorted((t for t in cpu if names.get(t) == "sqlite"), key=lambda t: -cpu[t])
    out: dict[str, float] = {}
    for tid, seconds in cpu.items():
        name = "main" if tid == pid else names.get(tid, "other")
        if name == "sqlite":
            name = "writer" if tid == sqlite[0] else "reader"
        out[name] = out.get(name, 0.0) + seconds
    return out


def run_one(checkout: str, mode: str, jobs: int, trace: bool,
            due_in_s: float = 0.0) -> tuple[float, dict[str, float], str]:
    """One run of ``checkout``: (jobs/s, CPU ms per 1,000 jobs by thread, trace counts)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="aioqueue-threads-") as tmp:
        db = os.path.join(tmp, "t.db")
        if trace:
            Path(tmp, "sitecustomize.py").write_text(textwrap.dedent(TRACE))
            env["PYTHONPATH"] = tmp
            env["AIOQUEUE_TRACE_OUT"] = os.path.join(tmp, "trace.txt")
        if mode == "drain":
            subprocess.run([sys.executable, "-c", FILL, db, str(jobs), str(int(due_in_s * 1000))],
                           cwd=checkout, check=True, env={**os.environ, "PYTHONPATH": checkout})
            due = time.monotonic() + due_in_s
        port = free_port()
        config = os.path.join(tmp, "c.toml")
        Path(config).write_text(UNLIMITED)
        argv = [sys.executable, "-m", "aioqueue", "serve", "--port", str(port), "--db", db,
                "--workers", "16", "--log-level", "WARNING", "--config", config]
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            names: dict[int, str] = {}
            if mode == "drain":
                base = {}
                if due_in_s:
                    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
                    names = thread_names(proc.pid)
                    if time.monotonic() >= due:
                        raise SystemExit(f"the server started after the jobs fell due: "
                                         f"raise --due-in above {due_in_s}")
                    base = thread_cpu(proc.pid)
                    started = due
                total, ended = wait_all_terminal(db, at_least=jobs)
            else:
                wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
                names = thread_names(proc.pid)
                base = thread_cpu(proc.pid)
                with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
                    script.write(STOP_AFTER)
                    script.flush()
                    started = time.monotonic()
                    delay = "&delay=86400" if mode == "submit" else ""
                    load = subprocess.Popen(
                        [require_wrk(), "-t1", "-c64", "-d60s", "-s", script.name,
                         f"http://127.0.0.1:{port}/async-process/?process=echo{delay}"],
                        stdout=subprocess.DEVNULL, env={**os.environ, "JOBS": str(jobs)})
                    try:
                        if mode == "submit":
                            total, ended = wait_stored(db, jobs, started + 60)
                        else:
                            total, _, ended = watch(db, jobs, started + 60)
                    finally:
                        stop(load)
            cpu = thread_cpu(proc.pid)
            names = names or thread_names(proc.pid)
        finally:
            stop(proc)
        counts = ""
        if trace and os.path.exists(env["AIOQUEUE_TRACE_OUT"]):
            counts = Path(env["AIOQUEUE_TRACE_OUT"]).read_text()
    used = {t: s - base.get(t, 0.0) for t, s in cpu.items()}
    per_k = {k: v * 1e6 / total for k, v in by_name(used, names, proc.pid).items()}
    return total / (ended - started), per_k, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--mode", choices=("drain", "http", "submit"), default="drain")
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--due-in", type=float, default=0.0, metavar="S",
                        help="drain: the jobs fall due S s after they are stored, and the "
                             "server's start-up is left out of the figures")
    args = parser.parse_args()
    for n in range(args.rounds):
        for checkout in args.checkouts:
            rate, cpu, counts = run_one(checkout, args.mode, args.jobs, args.trace,
                                         args.due_in)
            threads = "  ".join(f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda i: -i[1]))
            print(f"round {n + 1} {args.mode} {checkout}: {rate:.0f} jobs/s; CPU us/job: "
                  f"all {sum(cpu.values()):.0f}  {threads}", flush=True)
            if counts:
                print(textwrap.indent(counts, "    "), flush=True)


if __name__ == "__main__":
    main()
