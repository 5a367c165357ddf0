"""The server's footprint: idle RSS, start time, wake-ups while idle, and RSS under load.

    .venv/bin/python bench/footprint.py [--idle-s 20]

- start: from exec to the first 200 from /health, median of 5 starts on a fresh database;
- idle RSS: two seconds after that answer;
- wake-ups: context switches (every thread) and CPU ticks in ``--idle-s`` seconds of idle;
- RSS with 1,000 jobs of ``sleep`` running (1,000 workers), and with 1,000 open long polls.

The baseline, in the same run, is bench/hello.py (a bare aiohttp server) for start and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

from budgets import free_port, rss_kb, start_timed, stop  # noqa: E402

STARTS = 5
SETTLE_S = 2.0
LOAD = 1000
#: the server config for the loaded figures: room for 1,000 workers and connections
LOADED_CONFIG = f"""
[server]
max_connections = {LOAD + 500}
shutdown_grace_s = 0.1
[engine]
workers = {LOAD}
[limits]
max_backlog = {LOAD * 10}
max_long_polls = {LOAD}
"""


def _aioqueue(port: int, tmp: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "aioqueue", "serve", "--port", str(port),
            "--db", os.path.join(tmp, f"{port}.db"), "--log-level", "WARNING", *extra]


def _hello(port: int, tmp: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "hello.py"), str(port)]


def started(command, tmp: str) -> tuple[list[float], int]:
    """Start times of ``STARTS`` starts, and the idle RSS (KiB) after the first."""
    times, idle_kb = [], 0
    for number in range(STARTS):
        port = free_port()
        proc, elapsed = start_timed(command(port, tmp), port)
        try:
            times.append(elapsed)
            if number == 0:
                time.sleep(SETTLE_S)
                idle_kb = rss_kb(proc.pid)
        finally:
            stop(proc)
    return times, idle_kb


def wakeups(pid: int) -> tuple[int, int]:
    """Context switches of every thread, and CPU ticks (user + system), so far."""
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:
                switches += int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return switches, int(fields[11]) + int(fields[12])


def idle_wakeups(tmp: str, idle_s: float) -> tuple[int, int]:
    port = free_port()
    proc, _ = start_timed(_aioqueue(port, tmp), port)
    try:
        time.sleep(SETTLE_S)
        before = wakeups(proc.pid)
        time.sleep(idle_s)
        after = wakeups(proc.pid)
        return after[0] - before[0], after[1] - before[1]
    finally:
        stop(proc)


async def _until(http: aiohttp.ClientSession, url: str, running: int) -> None:
    """Poll /metrics until ``running`` jobs run (at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with http.get(f"{url}/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("aioqueue_jobs_running ") and float(line.split()[1]) >= running:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{running} jobs never ran at once")


async def _open_sockets(pid: int) -> int:
    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir()
               if os.readlink(fd).startswith("socket:"))


async def loaded(url: str, pid: int) -> tuple[int, int]:
    """RSS (KiB) with LOAD sleep jobs running, then with LOAD long polls open as well."""
    listening = await _open_sockets(pid)  # before any client connects
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/async-process/bulk?process=sleep",
                             json={"items": [{"seconds": 300}] * LOAD}) as resp:
            assert resp.status == 202, await resp.text()
            job_id = (await resp.json())["jobs"][0]["id"]
        await _until(http, url, LOAD)
    running_kb = rss_kb(pid)

    # a session of their own: every poll is a new connection
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as polling:

        async def poll() -> None:
            async with polling.get(f"{url}/async-process/{job_id}?return_timeout=100") as resp:
                await resp.read()

        polls = [asyncio.create_task(poll()) for _ in range(LOAD)]
        try:
            deadline = time.monotonic() + 60
            while await _open_sockets(pid) < listening + LOAD:
                if time.monotonic() > deadline:
                    ended = [t for t in polls if t.done()]
                    raise RuntimeError(
                        f"{await _open_sockets(pid) - listening} of {LOAD} long polls connected; "
                        f"{len(ended)} ended: {ended[0].exception() if ended else None!r}")
                await asyncio.sleep(0.1)
            polls_kb = rss_kb(pid)
        finally:
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
    return running_kb, polls_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle window (default 20)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory(prefix="aioqueue-footprint-") as tmp:
        hello_times, hello_kb = started(_hello, tmp)
        times, idle_kb = started(_aioqueue, tmp)
        switches, ticks = idle_wakeups(tmp, args.idle_s)
        config = os.path.join(tmp, "loaded.toml")
        Path(config).write_text(LOADED_CONFIG)
        port = free_port()
        proc, _ = start_timed(_aioqueue(port, tmp, "--config", config), port)
        try:
            running_kb, polls_kb = asyncio.run(loaded(f"http://127.0.0.1:{port}", proc.pid))
        finally:
            stop(proc)
    start, hello_start = statistics.median(times), statistics.median(hello_times)
    print(f"start to /health   {start:.3f} s   (aiohttp hello-world {hello_start:.3f} s, "
          f"x{start / hello_start:.2f}; target < 0.25 s)")
    print(f"idle RSS           {idle_kb / 1024:.1f} MiB (aiohttp hello-world "
          f"{hello_kb / 1024:.1f} MiB, x{idle_kb / hello_kb:.2f}; target < 35 MB)")
    print(f"idle {args.idle_s:g} s          {switches} context switches, {ticks} CPU ticks "
          f"(target 0)")
    print(f"RSS, {LOAD} running  {running_kb / 1024:.1f} MiB (sleep jobs, {LOAD} workers)")
    print(f"RSS, + {LOAD} polls  {polls_kb / 1024:.1f} MiB (long polls open on one job)")


if __name__ == "__main__":
    main()
