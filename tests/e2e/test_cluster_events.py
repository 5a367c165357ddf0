"""Resumable event streams: a reader that reconnects with ``Last-Event-ID``, to any server of
a cluster (or to a restarted single server), is sent exactly the jobs changed meanwhile; a
stream catches up within one sweep when no NOTIFY arrives at all. Real ``aioqueue serve``
processes on real sockets; the cluster cases need PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.helpers.sse import last_event_id, next_event

from .cluster import cluster, write_config
from .server import ServerProcess

pytestmark = pytest.mark.e2e

DEADLINE_S = 20
JSON = {"Content-Type": "application/json"}


async def _queue(http: aiohttp.ClientSession, server: ServerProcess) -> str:
    """A job that stays queued (due in ten minutes): only clients change it."""
    async with http.post(f"{server.url}/async-process/?process=sleep&delay=600",
                         json={"seconds": 1}) as resp:
        assert resp.status == 202, await resp.text()
        return (await resp.json())["id"]


async def _control(http: aiohttp.ClientSession, server: ServerProcess, job_id: str,
                   verb: str) -> dict:
    async with http.post(f"{server.url}/async-process/{job_id}/{verb}", headers=JSON) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def _until_marked(resp: aiohttp.ClientResponse, wanted: dict[str, str]) -> str:
    """Read until every job of ``wanted`` (id -> state) was seen in that state and an id
    followed; returns that id (what a browser would send on reconnecting)."""
    seen: dict[str, str] = {}
    async with asyncio.timeout(DEADLINE_S):
        while True:
            event = await next_event(resp, ids=True)
            assert event is not None, "the stream ended"
            if "data" in event:
                if event.get("event") == "job":
                    seen[event["data"]["id"]] = event["data"]["state"]
            elif all(seen.get(j) == s for j, s in wanted.items()):
                return event["id"]


async def _resumed(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """What a resumed stream sends before its first id: job id -> state."""
    jobs: dict[str, str] = {}
    async with asyncio.timeout(DEADLINE_S):
        while True:
            event = await next_event(resp, ids=True)
            assert event is not None, "the stream ended"
            if "data" not in event:
                return jobs
            assert event["event"] == "job", event
            assert event["data"]["id"] not in jobs, "a job sent twice"
            jobs[event["data"]["id"]] = event["data"]["state"]


@contextlib.asynccontextmanager
async def _stream(http: aiohttp.ClientSession, url: str,
                  last_id: str | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        yield resp


@pytest.mark.parametrize("nodes", [2, 3])
async def test_a_reader_resumes_on_another_server_with_exactly_what_it_missed(
        pg_url, tmp_path, http, nodes):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config] * nodes) as servers:
        a, b, c = servers[0], servers[1], servers[-1]
        first = await _queue(http, a)
        async with _stream(http, f"{a.url}/events") as resp:
            kept = await _queue(http, a)
            last_id = await _until_marked(resp, {kept: "queued"})
        # while the reader is away, another server changes one job and adds one
        await _control(http, b, first, "cancel")
        added = await _queue(http, b)
        async with _stream(http, f"{c.url}/events", last_id) as resp:
            assert await _resumed(resp) == {first: "failure", added: "queued"}
            # and it goes on live: a change on another server arrives
            await _control(http, b, added, "pause")
            assert await _until_marked(resp, {added: "paused"})


@pytest.mark.parametrize("nodes", [2, 3])
async def test_a_job_stream_resumes_on_another_server(pg_url, tmp_path, http, nodes):
    config = write_config(tmp_path)
    async with cluster(pg_url, [config] * nodes) as servers:
        a, b, c = servers[0], servers[1], servers[-1]
        job = await _queue(http, a)
        async with _stream(http, f"{a.url}/async-process/{job}/events") as resp:
            last_id = await _until_marked(resp, {job: "queued"})
        await _control(http, b, job, "pause")
        async with _stream(http, f"{c.url}/async-process/{job}/events", last_id) as resp:
            assert await _resumed(resp) == {job: "paused"}
            last_id = last_event_id(resp)
        # nothing changed since: nothing is sent again, only the id
        async with _stream(http, f"{b.url}/async-process/{job}/events", last_id) as resp:
            assert await _resumed(resp) == {}
            await _control(http, a, job, "cancel")
            async with asyncio.timeout(DEADLINE_S):
                end = await next_event(resp)
            assert (end["id"], end["data"]["state"]) == ("end", "failure")
        async with http.get(f"{c.url}/async-process/{job}/events",
                            headers={"Last-Event-ID": "end"}) as resp:
            assert resp.status == 204


async def test_a_stream_catches_up_within_a_sweep_when_no_notify_arrives(pg_url, tmp_path, http):
    lease_s = 3.0  # a sweep every second
    config = write_config(tmp_path, lease_s=lease_s)
    conn = await asyncpg.connect(pg_url)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        # B's NOTIFY goes nowhere: its search_path finds this pg_notify before pg_catalog's
        await conn.execute("CREATE FUNCTION pg_notify(text, text) RETURNS void "
                           "LANGUAGE sql AS 'SELECT NULL::void'")
    finally:
        await conn.close()
    silent = pg_url.replace(f"search_path%3D{schema}", f"search_path%3D{schema}%2Cpg_catalog")
    assert silent != pg_url
    async with cluster(pg_url, [config]) as (a,), cluster(silent, [config]) as (b,):
        async with _stream(http, f"{a.url}/events") as resp:
            await _until_marked(resp, {})
            loop = asyncio.get_running_loop()
            started = loop.time()
            job = await _queue(http, b)
            await _until_marked(resp, {job: "queued"})
            await _control(http, b, job, "cancel")
            await _until_marked(resp, {job: "failure"})
            # two changes, each within a sweep (lease_s / 3), with room for a slow machine
            assert loop.time() - started < 2 * lease_s
        assert not any("Traceback" in line for line in a.log + b.log)


async def test_one_server_on_sqlite_resumes_across_a_reconnect_and_a_restart(tmp_path, http):
    db = tmp_path / "jobs.db"
    server = await ServerProcess.start(db)
    try:
        async with _stream(http, f"{server.url}/events") as resp:
            seen = await _queue(http, server)
            last_id = await _until_marked(resp, {seen: "queued"})
        missed = await _queue(http, server)
        async with _stream(http, f"{server.url}/events", last_id) as resp:
            assert await _resumed(resp) == {missed: "queued"}
            last_id = last_event_id(resp)
        await _control(http, server, seen, "cancel")
        assert await server.terminate() == 0
        server = await ServerProcess.start(db)
        async with _stream(http, f"{server.url}/events", last_id) as resp:
            assert await _resumed(resp) == {seen: "failure"}
        # an id the log cannot answer: told so, and the stream goes on from now
        async with _stream(http, f"{server.url}/events", "12345678901234") as resp:
            async with asyncio.timeout(DEADLINE_S):
                assert (await next_event(resp))["event"] == "reset"
            assert await _resumed(resp) == {}
    finally:
        await server.kill()
