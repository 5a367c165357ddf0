"""A real server killed with SIGKILL mid-load loses no acknowledged job; SIGTERM drains."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

TERMINAL = {"success", "failure"}


def _request(n: int) -> tuple[str, object]:
    kind = n % 4
    if kind == 0:
        return "process=echo", {"n": n}
    if kind == 1:
        return "process=sleep&return_timeout=1", {"seconds": 0.05}
    if kind == 2:
        return "process=sha256&return_timeout=0.5", {"text": str(n)}
    return "process=fail", None


async def test_kill_9_under_load_then_restart_keeps_every_acknowledged_job(db_location):
    db = db_location
    server = await ServerProcess.start(db, "--workers", "8")
    acknowledged: dict[str, str] = {}
    ended_before_kill: dict[str, str] = {}
    enough = asyncio.Event()

    async def client(http: aiohttp.ClientSession, worker: int) -> None:
        n = worker
        while True:
            query, body = _request(n)
            n += 32
            try:
                async with http.post(f"{server.url}/async-process/?{query}", json=body,
                                     headers={"Content-Type": "application/json"}) as resp:
                    if resp.status not in (200, 202):
                        raise AssertionError(f"{resp.status}: {await resp.text()}")
                    job = await resp.json()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return  # the server is gone
            acknowledged[job["id"]] = job["state"]
            if job["state"] in TERMINAL:
                ended_before_kill[job["id"]] = job["state"]
            if len(acknowledged) >= 400:
                enough.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        clients = [asyncio.create_task(client(http, w)) for w in range(32)]
        await asyncio.wait_for(enough.wait(), 60)
        await asyncio.sleep(random.uniform(0, 0.05))  # kill at an unplanned moment
        await server.kill()
        await asyncio.gather(*clients)
    assert len(acknowledged) > len(ended_before_kill)  # jobs were in flight at the kill

    server = await ServerProcess.start(db, "--workers", "8")
    try:
        async with aiohttp.ClientSession() as http:
            for job_id, state_before in acknowledged.items():
                async with http.get(f"{server.url}/async-process/{job_id}?return_timeout=10") as resp:
                    assert resp.status == 200, f"acknowledged job {job_id} is gone"
                    job = await resp.json()
                assert job["state"] in TERMINAL, job
                if job_id in ended_before_kill:
                    assert job["state"] == ended_before_kill[job_id]
                assert job["attempts"] <= job["max_attempts"]
    finally:
        await server.terminate()


async def test_sigterm_drains_then_the_requeued_job_runs_after_restart(tmp_path, db_location):
    db = db_location
    config = tmp_path / "drain.toml"
    config.write_text("[server]\nshutdown_grace_s = 0.1\n")
    server = await ServerProcess.start(db, "--config", str(config))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/async-process/?process=sleep",
                             json={"seconds": 1.0}) as resp:
            job_id = (await resp.json())["id"]
        assert await server.terminate() == 0
        assert any("draining" in line for line in server.log)
        # the log names the job that outlived the grace period and was re-queued
        assert any("grace period" in line and job_id in line for line in server.log)

        server = await ServerProcess.start(db, "--config", str(config))
        try:
            async with http.get(f"{server.url}/async-process/{job_id}?return_timeout=10") as resp:
                job = await resp.json()
            assert job["state"] == "success"
            assert job["attempts"] == 1  # the drained attempt was given back
        finally:
            await server.terminate()
