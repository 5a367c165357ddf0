"""The Python client and the CLI on schedules and dependencies, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aioqueue.client import AsyncClient, Client


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_the_client_manages_schedules_and_submits_after_a_job(client):
    async with AsyncClient(_url(client)) as api:
        made = await api.put_schedule("hourly", "echo", every_s=3600, data={"n": 1})
        assert made["every_s"] == 3600 and made["source"] == "api"
        assert [s["name"] for s in await api.schedules()] == ["hourly"]
        assert (await api.pause_schedule("hourly"))["paused"] is True
        assert (await api.resume_schedule("hourly"))["paused"] is False
        fired = await api.trigger_schedule("hourly")
        assert fired.schedule == "hourly"
        listed = [job.id async for job in api.list(schedule="hourly")]
        assert listed == [fired.id]
        child = await api.submit("echo", 2, depends_on=[fired.id])
        assert child.depends_on == (fired.id,)
        assert (await api.wait(child.id, timeout=10)).result == 2
        assert [j.id async for j in api.list(depends_on=fired.id)] == [child.id]
        await api.delete_schedule("hourly")
        assert await api.schedules() == []


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIOQUEUE_URL": url}
    env.pop("AIOQUEUE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "aioqueue", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_the_cli_lists_pauses_and_triggers_schedules_and_submits_after(live_url):
    with Client(live_url) as api:
        api.put_schedule("nightly", "echo", cron="0 3 * * *", data=7)
    listed = _cli(live_url, "schedules")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["name"] == "nightly"
    assert json.loads(_cli(live_url, "schedules", "pause", "nightly").stdout)["paused"]
    fired = _cli(live_url, "schedules", "trigger", "nightly")
    job = json.loads(fired.stdout)
    assert job["schedule"] == "nightly"
    after = _cli(live_url, "submit", "echo", "--data", "1", "--after", job["id"], "--wait")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["depends_on"] == [job["id"]]
    assert _cli(live_url, "schedules", "pause").returncode == 2  # no name
