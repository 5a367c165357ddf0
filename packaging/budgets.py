"""The single file's budgets, measured against the pip-installed server in the same run.

- size under 30 MB;
- from exec to the first ``200`` from ``/health`` under 1 s (median of 3 starts);
- idle RSS, launcher and server together, within 10 % of the pip-installed server's.

Figures are printed; only the size, which does not depend on the machine's load, fails the
build when over. Uses the standard library only.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

SIZE_MB = 30
START_S = 1.0
RSS_RATIO = 1.10
IDLE_S = 2.0
STARTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the one-file launcher's child is the server)."""
    pids = [pid]
    for each in pids:
        for task in Path(f"/proc/{each}/task").iterdir():
            children = (task / "children").read_text().split()
            pids.extend(int(child) for child in children)
    return pids


def rss_kb(pid: int) -> int:
    total = 0
    for each in tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def start_timed(argv: list[str], port: int, *, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> tuple[subprocess.Popen, float]:
    """Start ``argv``, which listens on ``port``; the process and seconds to a healthy answer."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd, env=env)
    deadline = started + 30
    while not _healthy(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"{argv[0]} did not answer /health")
        time.sleep(0.005)
    return proc, time.monotonic() - started


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, and wait for it to end."""
    if proc.poll() is None:
        proc.terminate()
    proc.wait(30)


def run_once(command: list[str], *, idle: bool) -> tuple[float, int | None]:
    """Start a server on a fresh database; seconds to a healthy answer, and idle RSS in KiB
    (summed over the process and its children)."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, elapsed = start_timed(
            [*command, "serve", "--port", str(port), "--db", os.path.join(tmp, "jobs.db")], port)
        try:
            rss = None
            if idle:
                time.sleep(IDLE_S)
                rss = rss_kb(proc.pid)
            return elapsed, rss
        finally:
            stop(proc)


def measure(binary: Path, baseline: list[str]) -> int:
    """Print the budgets; 1 when the size is over its budget, else 0."""
    size_mb = binary.stat().st_size / 1e6
    starts: dict[str, list[float]] = {"binary": [], "pip": []}
    rss: dict[str, int] = {}
    for number in range(STARTS):
        for name, command in (("binary", [str(binary)]), ("pip", baseline)):
            elapsed, kb = run_once(command, idle=number == 0)
            starts[name].append(elapsed)
            if kb is not None:
                rss[name] = kb
    start = {name: statistics.median(times) for name, times in starts.items()}
    ratio = rss["binary"] / rss["pip"]
    rows = [
        ("file size", f"{size_mb:.1f} MB", f"< {SIZE_MB} MB", size_mb < SIZE_MB),
        ("start to /health", f"{start['binary']:.2f} s (pip-installed: {start['pip']:.2f} s)",
         f"< {START_S:g} s", start["binary"] < START_S),
        ("idle RSS", f"{rss['binary'] / 1024:.1f} MiB (pip-installed: {rss['pip'] / 1024:.1f} "
         f"MiB, x{ratio:.3f})", f"<= x{RSS_RATIO:.2f}", ratio <= RSS_RATIO),
    ]
    print(f"budgets of {binary.name}:")
    for what, figure, budget, ok in rows:
        print(f"  {what:<17} {figure:<52} budget {budget:<9} {'ok' if ok else 'OVER'}")
    return 0 if size_mb < SIZE_MB else 1
