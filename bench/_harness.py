"""Shared pieces of the benchmarks: free ports, servers as subprocesses, fresh stores, wrk runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers; give up early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode} before answering")
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def server(argv: list[str], health_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run a server process until the block ends, then stop it by its pid.

    Its error output goes to this terminal only if it fails to start."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=errors)
        try:
            try:
                wait_http(health_url, proc=proc)
            except Exception:
                errors.seek(0)
                sys.stderr.write(errors.read()[-4000:].decode(errors="replace"))
                raise
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
    """Ask a process started here to stop; kill it if it has not within ``timeout_s``."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def hello_process(loop: str = "asyncio") -> Iterator[tuple[str, subprocess.Popen]]:
    """bench/hello.py on ``loop``; yields (url, process)."""
    port = free_port()
    with server([sys.executable, str(HERE / "hello.py"), str(port), loop],
                f"http://127.0.0.1:{port}/") as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def hello_server(loop: str = "asyncio") -> Iterator[str]:
    with hello_process(loop) as (url, _):
        yield url


#: throughput runs queue far more than the default backlog limit, which would refuse them
UNLIMITED = "[limits]\nmax_backlog = 100000000\n"


INSTALL_EXTRA = "pip install -e '.[bench]' (huey, arq, saq, procrastinate, psycopg)"


def require_module(name: str) -> None:
    """Stop with the install line when a peer's package is missing."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        sys.exit(f"the Python package {name!r} is needed: {INSTALL_EXTRA}")


def is_postgres(db: str | None) -> bool:
    return bool(db) and db.startswith(("postgresql://", "postgres://"))


@contextmanager
def pg_database(dsn: str, label: str) -> Iterator[str]:
    """A fresh database on ``dsn``'s server (its role needs CREATEDB), dropped at the end."""
    require_module("psycopg")
    import psycopg

    name = f"bench_{label}_{os.getpid()}"
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(drop)


@contextmanager
def fresh_store(pg: str | None, tmp: str, label: str = "aioqueue") -> Iterator[str]:
    """A new SQLite path in ``tmp``, or a new database on the PostgreSQL server ``pg``."""
    if is_postgres(pg):
        with pg_database(pg, label) as url:
            yield url
    else:
        yield os.path.join(tmp, "bench.db")


@contextmanager
def aioqueue_server(*extra: str, workers: int = 16, config: str = UNLIMITED, pg: str | None = None
                    ) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """An aioqueue server on a fresh store (SQLite in a temp folder, or a new database on the
    PostgreSQL server ``pg``); yields (url, the store's path or URL, process)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aioqueue-bench-") as tmp, \
            fresh_store(pg, tmp) as db:
        config_path = os.path.join(tmp, "bench.toml")
        with open(config_path, "w") as fh:
            fh.write(config)
        argv = [sys.executable, "-m", "aioqueue", "serve", "--port", str(port), "--db", db,
                "--workers", str(workers), "--log-level", "WARNING", "--config", config_path,
                *extra]
        with server(argv, f"http://127.0.0.1:{port}/health") as proc:
            yield f"http://127.0.0.1:{port}", db, proc


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, *, connections: int, seconds: float, method: str = "GET", body: str | None = None,
        threads: int = 1) -> dict[str, float]:
    """Run wrk; returns req/s, p50 and p99 latency in ms, and the count of non-2xx answers."""
    script = f'wrk.method = "{method}"\nwrk.headers["Content-Type"] = "application/json"\n'
    if body is not None:
        script += f"wrk.body = [[{body}]]\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
             "-s", fh.name, url],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        os.unlink(fh.name)
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M).groups()
        figures[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = float(bad.group(1)) if bad else 0.0
    return figures
