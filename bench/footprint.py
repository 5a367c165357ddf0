"""The server's footprint: idle RSS, start time, wake-ups while idle, and RSS under load.

    .venv/bin/python bench/footprint.py [--idle-s 20] [--rounds 5] [--compare CHECKOUT]
                                        [--python PYTHON] [--no-load] [--loop asyncio,uvloop]

- start: from exec to the first 200 from /health, median (and fastest, the figure nearest
  to a quiet machine) of ``--rounds`` starts, on a fresh database (schema created) and on an
  existing one (a restart), with the package's bytecode compiled as ``pip install`` does;
  and one more with no bytecode cache (each module compiled at each start, as an editable
  install under PYTHONDONTWRITEBYTECODE does); and the CPU seconds the server used to get
  there, which the load of a shared machine stretches much less than the wall clock;
- idle RSS (and PSS, which shares the libraries' pages): two seconds after that answer;
- the floor under it, in the same run: Python alone, + asyncio, + ``aiohttp.web`` imported,
  and bench/hello.py (a bare aiohttp server answering one route);
- wake-ups: context switches (every thread) and CPU ticks in ``--idle-s`` seconds of idle;
- RSS with 1,000 jobs of ``sleep`` running (1,000 workers), and with 1,000 open long polls.

``--compare CHECKOUT`` measures another checkout of aioqueue (say main before a change) in
the same rounds, interleaved with this one: its server runs with that folder as the
working directory, so ``python -m aioqueue`` imports that checkout's package. ``--python``
runs every process with another Python: an editable install (``pip install -e``) adds a
finder that every start in its virtualenv imports (about 10 ms), which a pip-installed
server does not have. ``--loop asyncio,uvloop`` measures this checkout once on each event
loop named (``serve --event-loop``), interleaved, instead of once on its configured one.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "packaging"))

from budgets import free_port, rss_kb, start_timed, stop, tree  # noqa: E402

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
#: the floor: what Python and aiohttp take before any aioqueue code, each idle
FLOOR = {
    "python alone": "",
    "+ asyncio": "import asyncio",
    "+ aiohttp.web": "import aiohttp.web",
}
#: the Python every measured process runs (``--python``)
PYTHON = [sys.executable]
WAIT = "import sys, time; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(3600)"


class Side:
    """One aioqueue checkout: the command that serves it, and where it runs."""

    def __init__(self, name: str, checkout: Path, *options: str) -> None:
        self.name, self.checkout, self.options = name, checkout, options
        self.starts: list[float] = []
        self.restarts: list[float] = []
        self.cold: list[float] = []
        #: CPU seconds each start took to its first answer (the load of a shared machine
        #: stretches the wall-clock figure, much less this one)
        self.cpu: list[float] = []
        self.idle: tuple[int, int] = (0, 0)
        self.wakeups: tuple[int, int] = (0, 0)
        self.loaded: tuple[int, int] = (0, 0)

    def argv(self, port: int, db: str, *extra: str) -> list[str]:
        return [PYTHON[0], "-m", "aioqueue", "serve", "--port", str(port), "--db", db,
                "--log-level", "WARNING", *self.options, *extra]

    def start(self, port: int, db: str, *extra: str,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen, float]:
        proc, elapsed = start_timed(self.argv(port, db, *extra), port, cwd=self.checkout,
                                    env=env)
        self.cpu.append(cpu_s(proc.pid))
        return proc, elapsed


def cpu_s(pid: int) -> float:
    """CPU seconds every thread of ``pid`` has run so far (``schedstat``, in ns)."""
    return sum(int((task / "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def pss_kb(pid: int) -> int:
    """Proportional set size of ``pid`` and its children: shared pages split among users."""
    total = 0
    for each in tree(pid):
        for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def settled_memory(proc: subprocess.Popen) -> tuple[int, int]:
    time.sleep(SETTLE_S)
    return rss_kb(proc.pid), pss_kb(proc.pid)


def floor_memory(code: str) -> tuple[int, int]:
    """RSS and PSS of a Python that ran ``code`` and then waits."""
    proc = subprocess.Popen([PYTHON[0], "-c", f"{code}\n{WAIT}"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        return settled_memory(proc)
    finally:
        proc.kill()
        proc.wait()


def hello_round(memory: bool) -> tuple[float, float, tuple[int, int]]:
    """Seconds and CPU seconds to the hello-world's first answer, and its idle memory."""
    port = free_port()
    proc, elapsed = start_timed([PYTHON[0], str(ROOT / "bench" / "hello.py"), str(port)],
                                port)
    try:
        return elapsed, cpu_s(proc.pid), settled_memory(proc) if memory else (0, 0)
    finally:
        stop(proc)


def side_round(side: Side, tmp: str, number: int) -> None:
    """One start with no bytecode cache (each module compiled, as under
    PYTHONDONTWRITEBYTECODE with no ``__pycache__``), then with the bytecode compiled as
    ``pip install`` does: a fresh start (idle memory after the first) and a restart on its
    database."""
    db = os.path.join(tmp, f"{side.name}-{number}.db")
    for cache in (side.checkout / "aioqueue").rglob("__pycache__"):
        shutil.rmtree(cache)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cold_db = os.path.join(tmp, f"{side.name}-cold-{number}.db")
    proc, elapsed = side.start(free_port(), cold_db, env=env)
    stop(proc)
    side.cold.append(elapsed)
    side.cpu.pop()  # the CPU figure is of starts with bytecode
    compileall.compile_dir(side.checkout / "aioqueue", quiet=1)
    proc, elapsed = side.start(free_port(), db)
    try:
        side.starts.append(elapsed)
        if number == 0:
            side.idle = settled_memory(proc)
    finally:
        stop(proc)
    proc, elapsed = side.start(free_port(), db)
    stop(proc)
    side.restarts.append(elapsed)
    side.cpu.pop()  # fresh starts only


def wakeups(pid: int) -> tuple[int, int]:
    """Context switches of every thread, and CPU ticks (user + system), so far."""
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:
                switches += int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return switches, int(fields[11]) + int(fields[12])


def idle_wakeups(side: Side, tmp: str, idle_s: float) -> tuple[int, int]:
    port = free_port()
    proc, _ = side.start(port, os.path.join(tmp, f"{side.name}-idle.db"))
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
                name = line.partition(" ")[0].partition("{")[0]  # with or without a node label
                if name == "aioqueue_jobs_running" and float(line.split()[-1]) >= running:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{running} jobs never ran at once")


def _connected(port: int) -> int:
    """Established TCP connections the server on ``port`` holds (its own ends only: a
    connection just closed, such as the start's /health check, no longer counts)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":
                count += 1
    return count


async def loaded(url: str, pid: int) -> tuple[int, int]:
    """RSS (KiB) with LOAD sleep jobs running, then with LOAD long polls open as well."""
    port = int(url.rpartition(":")[2])
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
            while _connected(port) < LOAD:
                if time.monotonic() > deadline:
                    ended = [t for t in polls if t.done()]
                    raise RuntimeError(
                        f"{_connected(port)} of {LOAD} long polls connected; "
                        f"{len(ended)} ended: {ended[0].exception() if ended else None!r}")
                await asyncio.sleep(0.1)
            polls_kb = rss_kb(pid)
        finally:
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
    return running_kb, polls_kb


def loaded_rss(side: Side, tmp: str) -> tuple[int, int]:
    config = os.path.join(tmp, "loaded.toml")
    Path(config).write_text(LOADED_CONFIG)
    port = free_port()
    proc, _ = side.start(port, os.path.join(tmp, f"{side.name}-loaded.db"), "--config", config)
    try:
        return asyncio.run(loaded(f"http://127.0.0.1:{port}", proc.pid))
    finally:
        stop(proc)


def _mib(kb: int) -> str:
    return f"{kb / 1024:.1f}"


def report(sides: list[Side], hello: list[tuple[float, float]], hello_mem: tuple[int, int],
           floor: dict[str, tuple[int, int]], args: argparse.Namespace) -> None:
    hello_start = statistics.median(elapsed for elapsed, _ in hello)
    hello_cpu = statistics.median(cpu for _, cpu in hello)
    print("idle memory, MiB        RSS     PSS")
    for name, (rss, pss) in floor.items():
        print(f"  {name:<20} {_mib(rss):>6}  {_mib(pss):>6}")
    print(f"  {'aiohttp hello-world':<20} {_mib(hello_mem[0]):>6}  {_mib(hello_mem[1]):>6}")
    for side in sides:
        rss, pss = side.idle
        print(f"  {'aioqueue ' + side.name:<20} {_mib(rss):>6}  {_mib(pss):>6}   "
              f"x{rss / hello_mem[0]:.2f} of hello-world (target < 35 MB = 33.4 MiB)")
    print(f"start to /health, median (fastest) of {args.rounds}: aiohttp hello-world "
          f"{hello_start:.3f} s ({min(elapsed for elapsed, _ in hello):.3f} s), "
          f"CPU {hello_cpu:.3f} s")
    for side in sides:
        fresh, again = statistics.median(side.starts), statistics.median(side.restarts)
        cold = statistics.median(side.cold)
        print(f"  aioqueue {side.name:<8} fresh database {fresh:.3f} s ({min(side.starts):.3f} s, "
              f"x{fresh / hello_start:.2f}; target < 0.25 s), existing {again:.3f} s "
              f"({min(side.restarts):.3f} s), fresh with no bytecode cache {cold:.3f} s; "
              f"CPU to /health {statistics.median(side.cpu):.3f} s")
    for side in sides:
        (switches, ticks), (running_kb, polls_kb) = side.wakeups, side.loaded
        print(f"aioqueue {side.name}: idle {args.idle_s:g} s: {switches} context switches, "
              f"{ticks} CPU ticks (target 0)")
        if running_kb:
            print(f"  RSS, {LOAD} sleep jobs running  {_mib(running_kb)} MiB ({LOAD} workers)")
            print(f"  RSS, + {LOAD} long polls       {_mib(polls_kb)} MiB (open on one job)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle window (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="starts of each (default 5)")
    parser.add_argument("--compare", type=Path, help="another aioqueue checkout, interleaved")
    parser.add_argument("--no-load", action="store_true", help="skip the 1,000-job figures")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python to run them with, say a virtualenv where aioqueue is "
                             "pip-installed (not editable): packaging/build-binary's "
                             "build/binary-venv/bin/python (default: this one)")
    parser.add_argument("--loop", help="this checkout on each of these event loops, "
                                       "comma-separated (asyncio, uvloop, auto)")
    args = parser.parse_args()
    PYTHON[0] = os.path.abspath(args.python)  # not resolved: a venv's python is a link
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    loops = [loop for loop in (args.loop or "").split(",") if loop]
    sides = ([Side(f"this-{loop}", ROOT, "--event-loop", loop) for loop in loops]
             or [Side("this", ROOT)])
    if args.compare:
        sides.append(Side("compared", args.compare.resolve()))
    floor = {name: floor_memory(code) for name, code in FLOOR.items()}
    hello, hello_mem = [], (0, 0)
    with tempfile.TemporaryDirectory(prefix="aioqueue-footprint-") as tmp:
        for number in range(args.rounds):
            elapsed, cpu, memory = hello_round(number == 0)
            hello.append((elapsed, cpu))
            hello_mem = memory if number == 0 else hello_mem
            for side in sides if number % 2 == 0 else reversed(sides):
                side_round(side, tmp, number)
        for side in sides:
            side.wakeups = idle_wakeups(side, tmp, args.idle_s)
            if not args.no_load:
                side.loaded = loaded_rss(side, tmp)
    report(sides, hello, hello_mem, floor, args)


if __name__ == "__main__":
    main()
