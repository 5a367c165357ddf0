"""An idle server sleeps: no thread of it wakes up while nothing happens."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

IDLE_S = 5.0


def _switches(pid: int) -> int:
    """Context switches, voluntary or not, of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


async def _settled(pid: int, quiet_s: float = 0.5, timeout_s: float = 10) -> int:
    """The switch count once the last request's tail (its connection's close) is done:
    unchanged for ``quiet_s``. A timer firing more often than that never settles, and
    the idle window that follows catches it anyway."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    count = _switches(pid)
    while loop.time() < deadline:
        await asyncio.sleep(quiet_s)
        now = _switches(pid)
        if now == count:
            break
        count = now
    return count


async def test_the_idle_server_does_not_wake_up_in_5_s(tmp_path):
    server = await ServerProcess.start(tmp_path / "jobs.db")
    try:
        # some work first, so every part (workers, store, notifier, retention) is running
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=sleep&return_timeout=5",
                                 json={"seconds": 0.05}) as resp:
                assert (await resp.json())["state"] == "success"
        pid = server.proc.pid
        before = await _settled(pid)
        await asyncio.sleep(IDLE_S)  # the behaviour under test is what happens in this time
        woke = _switches(pid) - before
        assert woke == 0, f"the idle server woke up {woke} times in {IDLE_S:g} s"
    finally:
        await server.terminate()
