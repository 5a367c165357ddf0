"""Crash harness: kill -9 a loaded server at random moments, restart, count what survived.

  python bench/crash.py [--cycles 20] [--clients 32] [--seed N]

Each cycle starts the server on the same database, submits from many concurrent clients
(mixed processes, some waiting with return_timeout, some cancelled right away), kills it
with SIGKILL at a random moment, and goes on. At the end, on a last clean start, it checks
that every acknowledged id is present and ends terminal, that no job seen terminal ever
changed state, that no job ran more times than its max_attempts, and that SQLite's
integrity_check is ok. Prints the counts; exits non-zero on any loss.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import aiohttp

from _harness import HERE, free_port

TERMINAL = {"success", "failure"}


class Ledger:
    """What clients were told: acknowledged ids, and terminal states they saw."""

    def __init__(self) -> None:
        self.acknowledged: set[str] = set()
        self.terminal: dict[str, str] = {}
        self.cancelled = 0
        self.refused = collections.Counter()

    def saw(self, job: dict) -> None:
        self.acknowledged.add(job["id"])
        if job["state"] in TERMINAL:
            previous = self.terminal.setdefault(job["id"], job["state"])
            if previous != job["state"]:
                raise SystemExit(f"job {job['id']} changed from {previous} to {job['state']}")


def start(db: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aioqueue", "serve", "--port", str(port), "--db", db,
         "--workers", "8", "--log-level", "ERROR", "--config", env["AIOQUEUE_CRASH_CONFIG"]],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def wait_up(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited at start")
        try:
            async with http.get(f"{url}/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)
    raise SystemExit("the server did not start")


async def client(http: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random) -> None:
    while True:
        roll = rng.random()
        if roll < 0.4:
            query, body = "process=crash_quick", {"n": rng.randrange(1000)}
        elif roll < 0.7:
            query, body = "process=crash_slow&return_timeout=0.3", {"seconds": rng.uniform(0.05, 0.5)}
        elif roll < 0.85:
            query, body = "process=crash_flaky", {}
        else:
            query, body = "process=crash_slow", {"seconds": 2}
        try:
            async with http.post(f"{url}/async-process/?{query}", json=body) as resp:
                if resp.status not in (200, 202):
                    ledger.refused[resp.status] += 1
                    continue
                job = await resp.json()
            ledger.saw(job)
            if roll >= 0.85:
                async with http.post(f"{url}/async-process/{job['id']}/cancel") as resp:
                    if resp.status == 200:
                        ledger.cancelled += 1
                        ledger.saw(await resp.json())
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return


async def cycle(db: str, env: dict[str, str], ledger: Ledger, clients: int, rng: random.Random) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(db, port, env)
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await wait_up(http, url, proc)
            tasks = [asyncio.create_task(client(http, url, ledger, random.Random(rng.random())))
                     for _ in range(clients)]
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            await asyncio.gather(*tasks)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def verify(db: str, env: dict[str, str], ledger: Ledger, runs_log: str) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(db, port, env)
    problems = 0
    try:
        async with aiohttp.ClientSession() as http:
            await wait_up(http, url, proc)
            sem = asyncio.Semaphore(32)
            finals: dict[str, dict | None] = {}

            deadline = time.monotonic() + 600

            async def fetch(job_id: str) -> None:
                async with sem:
                    while True:
                        async with http.get(
                            f"{url}/async-process/{job_id}?return_timeout=30"
                        ) as resp:
                            finals[job_id] = await resp.json() if resp.status == 200 else None
                        job = finals[job_id]
                        if job is None or job["state"] in TERMINAL or time.monotonic() > deadline:
                            return

            await asyncio.gather(*(fetch(i) for i in ledger.acknowledged))
    finally:
        proc.terminate()
        proc.wait(60)
    lost = [i for i, job in finals.items() if job is None]
    unended = [i for i, job in finals.items() if job is not None and job["state"] not in TERMINAL]
    changed = [i for i, s in ledger.terminal.items() if finals[i] and finals[i]["state"] != s]
    runs = collections.Counter(line.split()[0] for line in open(runs_log)) if os.path.exists(runs_log) else {}
    over = [i for i, n in runs.items() if i in finals and finals[i] and n > finals[i]["max_attempts"]]
    over_attempts = [i for i, j in finals.items() if j and j["attempts"] > j["max_attempts"]]
    with sqlite3.connect(db) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    states = collections.Counter(j["state"] for j in finals.values() if j)
    errors = collections.Counter(j["error"]["code"] for j in finals.values() if j and j["error"])
    print(f"acknowledged jobs:          {len(ledger.acknowledged)}")
    print(f"seen terminal by clients:   {len(ledger.terminal)} (cancelled by clients: {ledger.cancelled})")
    print(f"final states:               {dict(states)}; error codes {dict(errors)}")
    print(f"refused submits:            {dict(ledger.refused)}")
    print(f"handler runs logged:        {sum(runs.values())}")
    print(f"lost: {len(lost)}  not terminal: {len(unended)}  terminal changed: {len(changed)}  "
          f"ran > max_attempts: {len(over)}  attempts > max_attempts: {len(over_attempts)}  "
          f"integrity_check: {integrity}")
    problems = len(lost) + len(unended) + len(changed) + len(over) + len(over_attempts)
    return problems + (integrity != "ok")


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="aioqueue-crash-") as tmp:
        db, runs_log = os.path.join(tmp, "crash.db"), os.path.join(tmp, "runs.log")
        config = os.path.join(tmp, "crash.toml")
        with open(config, "w") as fh:
            fh.write('[processes]\nmodules = ["crash_processes"]\n[engine]\nretry_base_s = 0.05\n')
        env = {**os.environ, "PYTHONPATH": str(HERE), "AIOQUEUE_CRASH_RUNS": runs_log,
               "AIOQUEUE_CRASH_CONFIG": config}
        ledger = Ledger()
        started = time.monotonic()
        for n in range(args.cycles):
            await cycle(db, env, ledger, args.clients, rng)
            print(f"cycle {n + 1}/{args.cycles}: {len(ledger.acknowledged)} acknowledged so far",
                  flush=True)
        print(f"seed {seed}, {args.cycles} kill -9 cycles in {time.monotonic() - started:.0f} s")
        problems = await verify(db, env, ledger, runs_log)
    print("OK: nothing lost" if problems == 0 else f"FAILED: {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
