"""A real server killed with SIGKILL at a schedule's fire time fires it exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

#: long enough that the restart is back before the next fire time
EVERY_MS = 5000


def _fire_times(db) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT fire_at_ms FROM jobs WHERE schedule = 'tick' ORDER BY fire_at_ms")]


async def _until(moment_ms: int) -> None:
    """Wait for a wall-clock moment (the fire time itself is what is tested)."""
    while (left := moment_ms - time.time_ns() // 1_000_000) > 0:
        await asyncio.sleep(min(left, 50) / 1000)


async def _job_for(url: str, fire_at: int, deadline_s: float = 15) -> None:
    """Poll the schedule until its latest firing is at or after ``fire_at``."""
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(deadline_s):
            while True:
                async with http.get(f"{url}/schedules/tick") as resp:
                    last = (await resp.json())["last"]
                if last is not None and last["fired_at"] >= _iso(fire_at):
                    return
                await asyncio.sleep(0.05)


def _iso(ms: int) -> str:
    from aioqueue.models import iso_ms

    return iso_ms(ms)


@pytest.mark.parametrize("offset_ms", [0, 4])
async def test_kill_9_at_a_fire_time_then_restart_fires_it_exactly_once(tmp_path, offset_ms):
    db = tmp_path / "sched.db"
    config = tmp_path / "sched.toml"
    config.write_text('[schedules.tick]\nprocess = "echo"\nevery_s = 5\ndata = "tick"\n')
    server = await ServerProcess.start(db, "--config", str(config))
    try:
        now = time.time_ns() // 1_000_000
        fire_at = (now // EVERY_MS + 1) * EVERY_MS  # the next fire time
        await _until(fire_at + offset_ms)
        await server.kill()  # at the fire time: its commit done, under way, or not begun
        before = _fire_times(db)
        server = await ServerProcess.start(db, "--config", str(config))
        await _job_for(server.url, fire_at)
        after = _fire_times(db)
        assert after.count(fire_at) == 1, (before, after)
        assert len(after) == len(set(after)), after  # no fire time twice, ever
        assert set(before) <= set(after)
    finally:
        await server.terminate()
