"""The Redis server the arq and saq peers need, started and stopped by the benchmark itself.

`redis_server` runs Debian's ``redis-server`` on a free loopback port in a temp folder, with
its files there, and stops it by its pid when the block ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from _harness import free_port, stop

#: what each Redis durability mode passes to redis-server
REDIS_MODES = {
    # an fsync of the append-only file before a write is answered, like SQLite's FULL
    "durable": ["--appendonly", "yes", "--appendfsync", "always"],
    # nothing written to disk: Redis as arq's and saq's quick starts run it
    "memory": ["--appendonly", "no"],
}


def require_redis() -> str:
    path = shutil.which("redis-server")
    if path is None:
        sys.exit("redis-server is needed for the arq and saq peers: apt-get install -y "
                 "redis-server (or leave them out with --peers)")
    return path


@contextmanager
def redis_server(mode: str = "durable", timeout_s: float = 15) -> Iterator[str]:
    """A private redis-server on 127.0.0.1; yields its URL and stops it by pid at the end."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aioqueue-bench-redis-") as tmp:
        proc = subprocess.Popen(
            [require_redis(), "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--save", "", "--daemonize", "no", "--logfile", "", *REDIS_MODES[mode]],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_redis(port, proc, timeout_s)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)


def _wait_redis(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer on port {port}")
        time.sleep(0.05)
