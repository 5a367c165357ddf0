"""Claim-ahead under a real ``aioqueue serve`` (issue 15): a server killed with SIGKILL while
it holds jobs claimed beyond its workers loses none of them; they come back like any
running job of a dead server and run after the restart."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

PROCS = '''
import aioqueue

@aioqueue.process("tick", max_attempts=3)
async def tick(ctx, data):
    return data
'''
JOBS = 3000


async def running_now(http: aiohttp.ClientSession, server: ServerProcess) -> int:
    async with http.get(f"{server.url}/async-process/?state=running&limit=100") as resp:
        return len((await resp.json())["jobs"])


async def test_kill_9_with_jobs_claimed_ahead_loses_none_of_them(tmp_path, db_location):
    (tmp_path / "ahead_procs.py").write_text(PROCS)
    config = tmp_path / "ahead.toml"
    config.write_text('[engine]\nworkers = 1\nclaim_ahead = 16\n'
                      '[processes]\nmodules = ["ahead_procs"]\n[cluster]\nlease_s = 1.0\n')
    server = await ServerProcess.start(db_location, "--config", str(config))
    ids: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            for start in range(0, JOBS, 500):
                async with http.post(f"{server.url}/async-process/bulk?process=tick",
                                     json={"items": list(range(start, start + 500))}) as resp:
                    assert resp.status == 202, await resp.text()
                    ids += [job["id"] for job in (await resp.json())["jobs"]]
            # one worker: more than one running job in the store means some wait, claimed
            # ahead; kill the server then
            deadline = asyncio.get_running_loop().time() + 30
            while (held := await running_now(http, server)) <= 1:
                assert asyncio.get_running_loop().time() < deadline, "nothing claimed ahead"
            await server.kill()
        finally:
            await server.kill()
        assert held > 1

        server = await ServerProcess.start(db_location, "--config", str(config))
        try:
            for job_id in ids:
                async with http.get(f"{server.url}/async-process/{job_id}?return_timeout=20"
                                    ) as resp:
                    assert resp.status == 200, f"job {job_id} is gone"
                    job = await resp.json()
                assert job["state"] == "success", job
                assert job["attempts"] <= 2, job  # at most the attempt cut short by the kill
        finally:
            await server.terminate()
