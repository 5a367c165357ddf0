"""What every peer run shares: the result row, the producers, the worker process and its signals.

A peer's worker runs as its own process (``python bench/peer_X.py worker``). It touches the
file ``BENCH_READY`` once it can take jobs, so its start-up is not timed, and, where the
peer calls a hook after a job's result is stored, touches ``BENCH_DONE`` when the
``BENCH_JOBS``-th job has ended. The orchestrator polls for those files every 20 ms, as it
polls aioqueue's database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from _harness import HERE, stop

POLL_S = 0.02

#: a peer's enqueue of the no-op job with argument n
Enqueue = Callable[[int], Awaitable[object]]


@dataclass
class Result:
    """One peer's figures from one run."""

    name: str
    setup: str  #: the store and its durability, in a few words
    done: int
    enqueue_s: float  #: from the first enqueue until the last one was acknowledged
    total_s: float  #: from the first enqueue until the last job's end was stored

    @property
    def rate(self) -> float:
        return self.done / self.total_s if self.total_s else 0.0


async def produce(jobs: int, producers: int, enqueue: Enqueue) -> tuple[float, float]:
    """Call ``enqueue(n)`` for every n below ``jobs`` from ``producers`` concurrent tasks;
    returns when it started (``time.monotonic``) and the seconds it took."""
    numbers = iter(range(jobs))

    async def producer() -> None:
        for n in numbers:
            await enqueue(n)

    started = time.monotonic()
    await asyncio.gather(*(producer() for _ in range(producers)))
    return started, time.monotonic() - started


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``check`` every 20 ms until it holds or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


@contextmanager
def worker(module: str, jobs: int, env: dict[str, str], ready_timeout_s: float = 30
           ) -> Iterator[Path]:
    """Start ``bench/<module>.py worker`` and wait until it is ready; yields the path of the
    file it touches when all ``jobs`` have ended. Stopped by its pid at the end."""
    with tempfile.TemporaryDirectory(prefix="aioqueue-bench-peer-") as tmp, \
            tempfile.TemporaryFile() as errors:
        ready, done = Path(tmp, "ready"), Path(tmp, "done")
        proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{module}.py"), "worker"],
            env={**os.environ, **env, "BENCH_READY": str(ready), "BENCH_DONE": str(done),
                 "BENCH_JOBS": str(jobs), "PYTHONPATH": str(HERE)},
            stdout=subprocess.DEVNULL, stderr=errors)
        try:
            if not wait_for(lambda: ready.exists() or proc.poll() is not None, ready_timeout_s) \
                    or proc.poll() is not None:
                errors.seek(0)
                sys.stderr.write(errors.read()[-4000:].decode(errors="replace"))
                raise RuntimeError(f"the {module} worker did not start")
            yield done
        finally:
            stop(proc, timeout_s=10)


def touch(variable: str) -> None:
    """Create the signal file named by the environment variable ``variable``."""
    Path(os.environ[variable]).touch()


class DoneCounter:
    """Counts ended jobs inside a peer's worker and touches ``BENCH_DONE`` at the last one."""

    def __init__(self) -> None:
        self.left = int(os.environ["BENCH_JOBS"])

    def ended(self) -> None:
        self.left -= 1
        if self.left == 0:
            touch("BENCH_DONE")


def run_signalled(name: str, setup: str, jobs: int, env: dict[str, str], producers: int,
                  timeout_s: float, connect: Callable[[], AbstractAsyncContextManager[Enqueue]]
                  ) -> Result:
    """Run a peer whose worker touches ``BENCH_DONE``: start the worker, enqueue ``jobs``
    through what ``connect`` yields, and time until the worker says all have ended."""
    with worker(f"peer_{name}", jobs, env) as done:
        async def enqueue_all() -> tuple[float, float]:
            async with connect() as enqueue:
                return await produce(jobs, producers, enqueue)

        started, enqueue_s = asyncio.run(enqueue_all())
        finished = wait_for(done.exists, timeout_s)
        total_s = time.monotonic() - started
    return Result(name, setup, jobs if finished else 0, enqueue_s, total_s)
