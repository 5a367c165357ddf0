"""Event streams and long polls are capped per token and in total, on a real `aioqueue serve`."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from aioqueue.http.tokens import config_lines, new_token

from .server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(tmp_path):
    tokens = {}
    lines = []
    for name in ("alice", "bob"):
        token, digest = new_token()
        tokens[name] = {"X-TOKEN": token, "Content-Type": "application/json"}
        lines.append(config_lines(name, digest, ["*"], False))
    config = tmp_path / "caps.toml"
    config.write_text("[server]\nshutdown_grace_s = 0.1\n"
                      "[events]\nmax_streams = 3\nmax_streams_per_token = 2\n"
                      "[limits]\nmax_long_polls = 3\nmax_long_polls_per_token = 2\n"
                      + "\n".join(lines))
    running = await ServerProcess.start(tmp_path / "jobs.db", "--config", str(config))
    running.tokens = tokens
    try:
        yield running
    finally:
        await running.terminate()


async def _refused(resp: aiohttp.ClientResponse, scope: str) -> None:
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["error"]["details"]["scope"] == scope


async def _job(http: aiohttp.ClientSession, server: ServerProcess, who: str) -> str:
    async with http.post(f"{server.url}/async-process/?process=sleep", json={"seconds": 60},
                         headers=server.tokens[who]) as resp:
        return (await resp.json())["id"]


async def test_streams_past_the_token_cap_or_the_total_get_429_until_one_closes(server, http):
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    job_id = await _job(http, server, "alice")
    async with contextlib.AsyncExitStack() as open_streams:
        first = await open_streams.enter_async_context(
            http.get(f"{server.url}/events", headers=alice))
        second = await open_streams.enter_async_context(
            http.get(f"{server.url}/async-process/{job_id}/events", headers=alice))
        assert first.status == second.status == 200
        async with http.get(f"{server.url}/events", headers=alice) as resp:
            await _refused(resp, "per_token")
        third = await open_streams.enter_async_context(
            http.get(f"{server.url}/events", headers=bob))
        assert third.status == 200
        async with http.get(f"{server.url}/events", headers=bob) as resp:
            await _refused(resp, "total")
        first.close()  # the reader hangs up: its slot comes back within a second or so
        deadline = time.monotonic() + 10
        while True:
            async with http.get(f"{server.url}/events", headers=bob) as resp:
                if resp.status == 200:
                    break
                await _refused(resp, "total")
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            await asyncio.sleep(0.2)


async def test_long_polls_past_the_token_cap_or_the_total_get_429_and_store_nothing(
        server, http):
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    job_id = await _job(http, server, "alice")
    bob_job = await _job(http, server, "bob")

    async def poll(headers: dict, target: str) -> int:
        """A client that waits for the job's end, trying again while it is refused."""
        while True:
            async with http.get(f"{server.url}/async-process/{target}?return_timeout=60",
                                headers=headers) as resp:
                if resp.status != 429:
                    return resp.status

    polls = [asyncio.create_task(poll(alice, job_id)) for _ in range(2)]
    polls.append(asyncio.create_task(poll(bob, bob_job)))
    try:
        deadline = time.monotonic() + 10
        while True:  # until the three wait: a refused probe holds no slot, so they hold all
            async with http.get(f"{server.url}/async-process/{bob_job}?return_timeout=0.01",
                                headers=bob) as resp:
                if resp.status == 429:
                    break
            assert time.monotonic() < deadline
        async with http.get(f"{server.url}/async-process/{job_id}?return_timeout=5",
                            headers=alice) as resp:
            await _refused(resp, "per_token")
        async with http.post(f"{server.url}/async-process/?process=echo", json=1,
                             headers={**bob, "Prefer": "wait=5"}) as resp:
            await _refused(resp, "total")
        async with http.get(f"{server.url}/async-process/", headers=bob) as resp:
            assert len((await resp.json())["jobs"]) == 1  # the refused one was not stored
        async with http.get(f"{server.url}/async-process/{job_id}", headers=alice) as resp:
            assert resp.status == 200  # an answer at once needs no slot
        for who, target in (("alice", job_id), ("bob", bob_job)):
            async with http.post(f"{server.url}/async-process/{target}/cancel",
                                 headers=server.tokens[who]) as resp:
                assert resp.status == 200
        assert await asyncio.wait_for(asyncio.gather(*polls), 10) == [200, 200, 200]
        async with http.get(f"{server.url}/async-process/{job_id}?return_timeout=1",
                            headers=alice) as resp:
            assert resp.status == 200  # their slots came back
    finally:
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
