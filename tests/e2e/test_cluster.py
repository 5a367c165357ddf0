"""Two and three ``aioqueue serve`` processes on one PostgreSQL database behave as one
server: waits, events and control cross servers; a killed or frozen server loses nothing
and overwrites nothing. Every scenario runs on two and on three servers; on three, the
servers a scenario does not single out must answer the same as the others. Needs
PostgreSQL (skips without it, fails under CI=true)."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp
import asyncpg
import pytest

from .cluster import cluster, get, node_of, samples, submit, until, write_config
from .server import ServerProcess

pytestmark = pytest.mark.e2e

#: no job end may stay unknown longer than this anywhere in these tests
DEADLINE_S = 30


@pytest.fixture(params=[2, 3], ids=["2 servers", "3 servers"])
def size(request: pytest.FixtureRequest) -> int:
    """How many servers the scenario runs on."""
    return request.param


async def test_a_job_submitted_on_a_runs_on_b_and_a_answers_at_once(pg_url, tmp_path, size):
    config = write_config(tmp_path, workers=1)  # lease 30 s: the sweep cannot help in time
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        busy, b = await _occupy_all_but_one(http, servers)
        a = busy[0][0]  # its one worker is taken, as every server's but B's
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = await submit(http, a, "work", {"steps": 1}, wait_s=8)
        assert done["state"] == "success", done
        assert done["result"]["pid"] == b.proc.pid
        # answered by B's notice, long before the heartbeat's sweep (every 10 s) would
        assert loop.time() - started < 5
        for other in servers:
            seen = await get(http, other, done["id"])
            assert (seen["state"], seen["result"]) == ("success", done["result"]), seen


async def test_a_cancel_sent_to_b_frees_the_worker_on_a(pg_url, tmp_path, size):
    config = write_config(tmp_path, workers=1)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        busy, _ = await _occupy_all_but_one(http, servers)
        a, job = busy[0]
        b = next(s for s in servers if s is not a)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with http.post(f"{b.url}/async-process/{job['id']}/cancel", json={}) as resp:
            assert resp.status == 200
            cancelled = await resp.json()
            assert cancelled["error"]["code"] == "cancelled"
        # A's handler stopped and its one worker is free, told by B's notice (the
        # heartbeat would take up to 10 s); the other busy servers go on with their jobs
        await until(lambda: _running_here(http, a, 0), DEADLINE_S, "A's worker is free")
        assert loop.time() - started < 5
        for other, _ in busy[1:]:
            assert await _running_here(http, other, 1)
        for other in servers:
            assert await get(http, other, job["id"]) == cancelled
        after = await submit(http, a, "work", {"steps": 1}, wait_s=8)
        assert after["state"] == "success"


async def test_sse_on_b_shows_progress_made_on_a(pg_url, tmp_path, size):
    config = write_config(tmp_path, workers=1)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        a, others = servers[0], servers[1:]
        job = await submit(http, a, "work", {"steps": 40, "step_s": 0.1}, wait_s=0.3)
        assert job["state"] == "running" and job["id"]
        # every other server streams A's progress, each in its own order of steps
        streams = await asyncio.gather(*(_progress_seen(http, s, job["id"]) for s in others))
        for seen in streams:
            assert len(seen) >= 3 and seen == sorted(seen), streams


async def test_the_same_idempotency_key_on_every_server_at_once_makes_one_job(
        pg_url, tmp_path, size):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        for round_ in range(5):
            key = {"Idempotency-Key": f"race-{round_}"}
            answers = await asyncio.gather(*(
                submit(http, servers[n % size], "work", {"steps": 1}, headers=key)
                for n in range(3 * size)))
            assert len({a["id"] for a in answers}) == 1, answers
        for server in servers:
            async with http.get(f"{server.url}/async-process/?limit=100") as resp:
                assert len((await resp.json())["jobs"]) == 5


async def test_kill_9_of_a_server_mid_run_loses_no_job(pg_url, tmp_path, size):
    config = write_config(tmp_path, lease_s=1.5, workers=2)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        a, survivors = servers[0], servers[1:]
        # A runs two jobs and more wait in the queue
        running = [await submit(http, a, "work", {"steps": 30, "step_s": 0.1}, wait_s=0.2)
                   for _ in range(2)]
        assert [j["state"] for j in running] == ["running", "running"]
        queued = [await submit(http, a, "work", {"steps": 5}) for _ in range(6)]
        await a.kill()
        pids = {s.proc.pid for s in survivors}
        for n, job in enumerate(running + queued):
            # each end is awaited on another survivor in turn
            end = await get(http, survivors[n % len(survivors)], job["id"], wait_s=DEADLINE_S)
            assert end["state"] == "success", end
            assert end["result"]["pid"] in pids, end
        for server in survivors:
            # A's two jobs were rescued: their first attempt counted
            for job in running:
                assert (await get(http, server, job["id"]))["attempts"] == 2
            async with http.get(f"{server.url}/async-process/?state=running") as resp:
                assert (await resp.json())["jobs"] == []


async def test_kill_9_ends_a_job_with_no_attempt_left_as_interrupted(pg_url, tmp_path, size):
    config = write_config(tmp_path, lease_s=1.5, workers=1)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        a, survivors = servers[0], servers[1:]
        job = await submit(http, a, "once", {"seconds": 60}, wait_s=0.3)
        assert job["state"] == "running"
        await a.kill()
        ends = await asyncio.gather(*(get(http, s, job["id"], wait_s=DEADLINE_S)
                                      for s in survivors))
        for end in ends:
            assert (end["state"], end["error"]["code"]) == ("failure", "interrupted"), end
            assert end["attempts"] == 1, end


async def test_a_frozen_server_never_overwrites_the_attempt_that_replaced_it(
        pg_url, tmp_path, size):
    config = write_config(tmp_path, lease_s=1.5, workers=1)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        a, others = servers[0], servers[1:]
        job = await submit(http, a, "work", {"steps": 10, "step_s": 0.1}, wait_s=0.2)
        assert job["state"] == "running"
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # another server rescues it once A's lease ran out and runs it to its end
            end = await get(http, others[0], job["id"], wait_s=DEADLINE_S)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        assert end["state"] == "success", end
        assert end["result"]["pid"] in {s.proc.pid for s in others}, end
        # A wakes with a handler whose claim is gone: it stops it or its end is refused
        await until(lambda: _said(a, "lost the claims", "the end was not recorded"),
                    DEADLINE_S, "A noticed that its claim was taken over")
        await until(lambda: _running_here(http, a, 0), DEADLINE_S, "A's worker is free")
        for server in servers:
            assert await get(http, server, job["id"]) == end


async def test_a_restarted_listener_connection_wakes_waiters_again(pg_url, tmp_path, size):
    config = write_config(tmp_path, workers=1)  # lease 30 s: the sweep cannot help in time
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        conn = await asyncpg.connect(pg_url)
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            listening = (
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
                "AND query LIKE '%' || $1 || '%'")
            before = {r[0] for r in await conn.fetch(listening, schema)}
            assert len(before) == size
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE pid = ANY($1::int[])", list(before))

            async def relistening():
                now = {r[0] for r in await conn.fetch(listening, schema)}
                return len(now) == size and not now & before

            await until(relistening, DEADLINE_S, "every server listens again")
        finally:
            await conn.close()
        busy, b = await _occupy_all_but_one(http, servers)
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = await submit(http, busy[0][0], "work", {"steps": 1}, wait_s=8)
        assert done["state"] == "success" and done["result"]["pid"] == b.proc.pid
        assert loop.time() - started < 5


async def test_every_series_of_a_server_carries_its_node(pg_url, tmp_path, size):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config] * size) as servers, aiohttp.ClientSession() as http:
        for server in servers:
            await submit(http, server, "work", {"steps": 1, "step_s": 0}, wait_s=8)
        nodes = [(await node_of(http, server))["id"] for server in servers]
        scraped = [await samples(http, server) for server in servers]
    assert len(set(nodes)) == size
    for node, found in zip(nodes, scraped):
        assert found and all(dict(labels).get("node") == node for _, labels in found), found
    # scraped into one Prometheus (even through one address), no series of one server
    # stands for another's
    for n, found in enumerate(scraped):
        for other in scraped[n + 1:]:
            assert not set(found) & set(other)


async def _occupy_all_but_one(http: aiohttp.ClientSession, servers: list[ServerProcess]
                              ) -> tuple[list[tuple[ServerProcess, dict]], ServerProcess]:
    """A long job on every server but one (each has one worker), submitted one at a time
    on the first server: the busy servers, each with the job it runs, and the free one."""
    busy: list[tuple[ServerProcess, dict]] = []
    for _ in servers[1:]:
        job = await submit(http, servers[0], "once", {"seconds": 60})

        async def newly_busy():
            for server in servers:
                if all(s is not server for s, _ in busy) and await _running_here(http, server, 1):
                    return server
            return None

        busy.append((await until(newly_busy, DEADLINE_S, "a server took the job"), job))
    free = [s for s in servers if all(s is not b for b, _ in busy)]
    assert len(free) == 1
    return busy, free[0]


async def _progress_seen(http: aiohttp.ClientSession, server: ServerProcess,
                         job_id: str) -> list[float]:
    """The progress percentages ``server``'s event stream of the job shows (three, or
    until the job ends)."""
    seen: list[float] = []
    async with asyncio.timeout(DEADLINE_S), http.get(
            f"{server.url}/async-process/{job_id}/events") as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data:"):
                body = json.loads(line[5:])
                progress = body.get("progress")
                if progress and progress.get("percent", 0) > 0:
                    seen.append(progress["percent"])
                if body["state"] == "success" or len(seen) >= 3:
                    break
    return seen


async def _said(server: ServerProcess, *phrases: str) -> bool:
    return any(p in line for line in server.log for p in phrases)


async def _running_here(http: aiohttp.ClientSession, server: ServerProcess, count: int) -> bool:
    """Whether ``server``'s workers run ``count`` handlers now (its own, not the database's
    count: a handler that did not stop still holds its worker)."""
    node = (await node_of(http, server))["id"]
    return (await samples(http, server))[("aioqueue_jobs_running", (("node", node),))] == count
