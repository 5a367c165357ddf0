"""A schedule defined on two servers that share one PostgreSQL database fires once per fire
time: the unique (schedule, fire time) key in the store decides, not a leader."""

from __future__ import annotations

import aiohttp
import pytest

from tests import postgres

from .cluster import cluster, until, write_config

pytestmark = pytest.mark.e2e

#: firings to watch; every_s = 1 makes them one second apart
FIRINGS = 4


async def _fire_times(pg_url: str) -> list[int]:
    """Every stored firing's fire time, read straight from the test's schema."""
    import asyncpg

    schema = pg_url.rsplit("%3D", 1)[1]
    conn = await asyncpg.connect(postgres.dsn())
    try:
        rows = await conn.fetch(
            f'SELECT fire_at_ms FROM "{schema}".jobs WHERE schedule = $1 ORDER BY fire_at_ms',
            "tick")
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def test_two_servers_fire_each_time_of_one_schedule_exactly_once(pg_url, tmp_path):
    config = write_config(tmp_path)
    with config.open("a") as fh:
        fh.write('[schedules.tick]\nprocess = "echo"\nevery_s = 1\ndata = "tick"\n'
                 'catch_up = "none"\n')
    async with cluster(pg_url, [config, config]) as servers, aiohttp.ClientSession() as http:
        async def enough() -> list[int] | None:
            times = await _fire_times(pg_url)
            return times if len(times) > FIRINGS else None

        await until(enough, 20, f"{FIRINGS + 1} firings of the schedule")
        times = await _fire_times(pg_url)
        # one job per fire time, and no fire time between the first and the last skipped
        assert len(times) == len(set(times))
        assert [b - a for a, b in zip(times, times[1:])] == [1000] * (len(times) - 1)
        for server in servers:  # both ran a scheduler, both still answer
            async with http.get(f"{server.url}/schedules/tick") as resp:
                assert resp.status == 200
                assert (await resp.json())["last"] is not None
            async with http.get(f"{server.url}/async-process/?schedule=tick&limit=1000") as resp:
                listed = (await resp.json())["jobs"]
            assert len(listed) >= len(times)
            assert all(job["schedule"] == "tick" for job in listed)
