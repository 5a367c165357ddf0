"""Two and three ``aioqueue serve`` processes on one PostgreSQL database behave as one
server: waits, events and control cross servers; a killed or frozen server loses nothing
and overwrites nothing. Needs PostgreSQL (skips without it, fails under CI=true)."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp
import asyncpg
import pytest

from .cluster import cluster, get, node_of, samples, submit, until, write_config

pytestmark = pytest.mark.e2e

#: no job end may stay unknown longer than this anywhere in these tests
DEADLINE_S = 30


async def test_a_job_submitted_on_a_runs_on_b_and_a_answers_at_once(pg_url, tmp_path):
    config = write_config(tmp_path, workers=1)  # lease 30 s: the sweep cannot help in time
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        a, b, _ = await _occupy(http, a, b)  # A's one worker is taken
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = await submit(http, a, "work", {"steps": 1}, wait_s=8)
        assert done["state"] == "success", done
        assert done["result"]["pid"] == b.proc.pid
        # answered by B's notice, long before the heartbeat's sweep (every 10 s) would
        assert loop.time() - started < 5


async def test_a_cancel_sent_to_b_frees_the_worker_on_a(pg_url, tmp_path):
    config = write_config(tmp_path, workers=1)
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        a, b, job = await _occupy(http, a, b)
        async with http.post(f"{b.url}/async-process/{job['id']}/cancel", json={}) as resp:
            assert resp.status == 200
            assert (await resp.json())["error"]["code"] == "cancelled"
        await b.terminate()
        # A has one worker: a new job runs there only once the cancelled handler let go
        after = await submit(http, a, "work", {"steps": 1}, wait_s=8)
        assert after["state"] == "success" and after["result"]["pid"] == a.proc.pid


async def test_sse_on_b_shows_progress_made_on_a(pg_url, tmp_path):
    config = write_config(tmp_path, workers=1)
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        job = await submit(http, a, "work", {"steps": 40, "step_s": 0.1}, wait_s=0.3)
        assert job["state"] == "running"
        seen: list[float] = []
        async with asyncio.timeout(DEADLINE_S), http.get(
                f"{b.url}/async-process/{job['id']}/events") as resp:
            assert resp.status == 200
            async for line in resp.content:
                if line.startswith(b"data:"):
                    body = json.loads(line[5:])
                    progress = body.get("progress")
                    if progress and progress.get("percent", 0) > 0:
                        seen.append(progress["percent"])
                    if body["state"] == "success" or len(seen) >= 3:
                        break
        assert len(seen) >= 3 and seen == sorted(seen), seen


async def test_the_same_idempotency_key_on_two_servers_at_once_makes_one_job(pg_url, tmp_path):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config, config, config]) as servers, \
            aiohttp.ClientSession() as http:
        for round_ in range(5):
            key = {"Idempotency-Key": f"race-{round_}"}
            answers = await asyncio.gather(*(
                submit(http, servers[n % 3], "work", {"steps": 1}, headers=key)
                for n in range(9)))
            assert len({a["id"] for a in answers}) == 1, answers
        async with http.get(f"{servers[0].url}/async-process/?limit=100") as resp:
            assert len((await resp.json())["jobs"]) == 5


async def test_kill_9_of_a_server_mid_run_loses_no_job(pg_url, tmp_path):
    config = write_config(tmp_path, lease_s=1.5, workers=2)
    async with cluster(pg_url, [config, config, config]) as (a, b, c), \
            aiohttp.ClientSession() as http:
        # A runs two jobs and more wait in the queue
        running = [await submit(http, a, "work", {"steps": 30, "step_s": 0.1}, wait_s=0.2)
                   for _ in range(2)]
        assert [j["state"] for j in running] == ["running", "running"]
        queued = [await submit(http, a, "work", {"steps": 5}) for _ in range(6)]
        await a.kill()
        for job in running + queued:
            end = await get(http, b if job is not running[0] else c, job["id"], wait_s=DEADLINE_S)
            assert end["state"] == "success", end
            assert end["result"]["pid"] in (b.proc.pid, c.proc.pid), end
        # A's two jobs were rescued: their first attempt counted
        for job in running:
            assert (await get(http, b, job["id"]))["attempts"] == 2
        async with http.get(f"{b.url}/async-process/?state=running") as resp:
            assert (await resp.json())["jobs"] == []


async def test_kill_9_ends_a_job_with_no_attempt_left_as_interrupted(pg_url, tmp_path):
    config = write_config(tmp_path, lease_s=1.5, workers=1)
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        job = await submit(http, a, "once", {"seconds": 60}, wait_s=0.3)
        assert job["state"] == "running"
        await a.kill()
        end = await get(http, b, job["id"], wait_s=DEADLINE_S)
        assert (end["state"], end["error"]["code"]) == ("failure", "interrupted"), end


async def test_a_frozen_server_never_overwrites_the_attempt_that_replaced_it(pg_url, tmp_path):
    config = write_config(tmp_path, lease_s=1.5, workers=1)
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        job = await submit(http, a, "work", {"steps": 10, "step_s": 0.1}, wait_s=0.2)
        assert job["state"] == "running"
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            # B rescues it once A's lease ran out and runs it to its end
            end = await get(http, b, job["id"], wait_s=DEADLINE_S)
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        assert end["state"] == "success" and end["result"]["pid"] == b.proc.pid, end
        # A wakes with a handler whose claim is gone: it stops it or its end is refused
        await until(lambda: _said(a, "lost the claims", "the end was not recorded"),
                    DEADLINE_S, "A noticed that its claim was taken over")
        await until(lambda: _idle(http, a), DEADLINE_S, "A's worker is free")
        now = await get(http, b, job["id"])
        assert now == end


async def test_a_restarted_listener_connection_wakes_waiters_again(pg_url, tmp_path):
    config = write_config(tmp_path, workers=1)  # lease 30 s: the sweep cannot help in time
    async with cluster(pg_url, [config, config]) as (a, b), aiohttp.ClientSession() as http:
        conn = await asyncpg.connect(pg_url)
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            listening = (
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
                "AND query LIKE '%' || $1 || '%'")
            before = {r[0] for r in await conn.fetch(listening, schema)}
            assert len(before) == 2
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE pid = ANY($1::int[])", list(before))

            async def relistening():
                now = {r[0] for r in await conn.fetch(listening, schema)}
                return len(now) == 2 and not now & before

            await until(relistening, DEADLINE_S, "both servers listen again")
        finally:
            await conn.close()
        a, b, _ = await _occupy(http, a, b)
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = await submit(http, a, "work", {"steps": 1}, wait_s=8)
        assert done["state"] == "success" and done["result"]["pid"] == b.proc.pid
        assert loop.time() - started < 5


async def test_every_series_of_a_server_carries_its_node(pg_url, tmp_path):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config, config]) as servers, aiohttp.ClientSession() as http:
        for server in servers:
            await submit(http, server, "work", {"steps": 1, "step_s": 0}, wait_s=8)
        nodes = [(await node_of(http, server))["id"] for server in servers]
        scraped = [await samples(http, server) for server in servers]
    assert len(set(nodes)) == len(servers)
    for node, found in zip(nodes, scraped):
        assert found and all(dict(labels).get("node") == node for _, labels in found), found
    # scraped into one Prometheus (even through one address), no series of one server
    # stands for another's
    assert not set(scraped[0]) & set(scraped[1])


async def _occupy(http: aiohttp.ClientSession, a, b) -> tuple:
    """Submit a long job on ``a``; the server whose one worker runs it comes first."""
    busy = await submit(http, a, "once", {"seconds": 60}, wait_s=0.3)
    assert busy["state"] == "running"
    return ((a, b) if (await node_of(http, a))["running"] == 1 else (b, a)) + (busy,)


async def _said(server, *phrases: str) -> bool:
    return any(p in line for line in server.log for p in phrases)


async def _idle(http: aiohttp.ClientSession, server) -> bool:
    node = (await node_of(http, server))["id"]
    return (await samples(http, server))[("aioqueue_jobs_running", (("node", node),))] == 0
