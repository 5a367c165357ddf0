"""A real full disk under a real server: a job that ends meanwhile keeps its end (#10 item 3).

The database sits on a small tmpfs that the test fills to the last byte while a job runs.
Mounting needs root; elsewhere the test is skipped with the reason, and
``tests/unit/test_lost_ends.py`` covers the same behaviour with a store whose writes fail
on demand.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

CONFIG = "[engine]\nworkers = 2\nwrite_retry_base_s = 0.05\nwrite_retry_max_s = 0.2\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("a real full disk needs a tmpfs, and mounting one is not permitted here "
                    f"({done.stderr.strip() or 'mount failed'}); run the tests as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    path = folder / "filler"
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    return path


async def poll(http: aiohttp.ClientSession, url: str, check, timeout_s: float = 20):
    """GET ``url`` until ``check(status, body)`` holds; returns the body."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with http.get(url) as resp:
            status, body = resp.status, await resp.json()
        if check(status, body):
            return body
        assert asyncio.get_running_loop().time() < deadline, (status, body)
        await asyncio.sleep(0.05)


async def test_a_full_disk_keeps_the_end_of_a_running_job_and_health_says_so(
        small_disk, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    db = small_disk / "jobs.db"
    server = await ServerProcess.start(db, "--config", str(config))
    try:
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/async-process/?process=sleep", json={"seconds": 1}) as resp:
                job = await resp.json()
            assert job["state"] == "running"
            filler = fill(small_disk)
            body = await poll(http, "/health", lambda status, _: status == 503)
            assert body["error"]["details"]["status"] == "degraded"
            await poll(http, "/health", lambda _, b: b.get("error", {}).get("details", {})
                       .get("pending_ends") == 1)
            async with http.get(f"/async-process/{job['id']}") as resp:
                assert (await resp.json())["state"] == "running"
            async with http.post("/async-process/?process=echo", json=1) as resp:
                assert resp.status == 503
            os.remove(filler)
            ended = await poll(http, f"/async-process/{job['id']}",
                               lambda _, b: b["state"] != "running")
            assert ended["state"] == "success" and "slept" in ended["result"]
            await poll(http, "/health", lambda status, _: status == 200)
        assert await server.terminate() == 0
        server = await ServerProcess.start(db, "--config", str(config))
        async with aiohttp.ClientSession(server.url) as http:
            async with http.get(f"/async-process/{job['id']}") as resp:
                assert await resp.json() == ended  # not interrupted, not run again
    finally:
        await server.terminate()
