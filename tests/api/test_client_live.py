"""The clients against the real server: typed jobs, long polls, errors with the server's code."""

from __future__ import annotations

import asyncio

import pytest
from tests.support import needs_route

from aioqueue.client import ApiError, AsyncClient, Client
from aioqueue.engine import Registry

ANY_ID = "0" * 32


def _url(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_submit_then_wait_returns_the_typed_result(client):
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("sha256", {"text": "hi"})
        done = await api.wait(job.id, timeout=5)
    assert done.id == job.id
    assert done.succeeded and done.terminal
    assert done.result == {
        "sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}
    assert done.ended_at is not None and done.ended_at >= done.created_at


async def test_submit_with_wait_answers_once_the_job_ended(client):
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("echo", [1, 2], wait=5)
        failed = await api.submit("fail", None, wait=5)
    assert (job.state, job.result) == ("success", [1, 2])
    assert failed.state == "failure" and failed.error is not None
    assert failed.error.code == "exception"


async def test_wait_long_polls_instead_of_looping(make_client):
    registry = Registry()
    release = asyncio.Event()

    @registry.process("held")
    async def held(ctx, data):
        await release.wait()

    client = await make_client(registry)
    async with AsyncClient(_url(client), poll_s=0.1) as api:
        job = await api.submit("held")
        still = await api.wait(job.id, timeout=0.45)
        release.set()
        done = await api.wait(job.id, timeout=5)
    assert still.state == "running"
    assert done.state == "success"
    metrics = await (await client.get("/metrics")).text()
    polls = [line for line in metrics.splitlines()
             if line.startswith("aioqueue_http_requests_total{") and all(label in line for label in (
                 'method="GET"', 'route="/async-process/{job_id}"', 'status="200"'))]
    # about 0.45 s / 0.1 s long polls, then one for the end: a tight loop would make hundreds
    assert 3 <= float(polls[0].split()[-1]) <= 10


async def test_errors_carry_the_servers_code_and_details(client):
    async with AsyncClient(_url(client)) as api:
        with pytest.raises(ApiError) as missing:
            await api.get(ANY_ID)
        with pytest.raises(ApiError) as unknown:
            await api.submit("no-such-process")
        with pytest.raises(ApiError) as invalid:
            await api.submit("sleep", {"seconds": "soon"})
        with pytest.raises(ApiError) as escaped:
            await api.get("../health")  # the id stays one path segment
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_process")
    assert (invalid.value.status, invalid.value.code) == (400, "invalid_input")
    assert invalid.value.details[0]["path"] == "/seconds"
    assert (escaped.value.status, escaped.value.code) == (404, "not_found")


async def test_watch_reports_progress_until_the_end(make_client):
    registry = Registry()
    step = asyncio.Event()

    @registry.process("two-steps")
    async def two_steps(ctx, data):
        await ctx.progress(50, "half")
        await step.wait()
        return "done"

    client = await make_client(registry)
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("two-steps")
        # wait (with a deadline) until the progress is committed, so the watch starts from it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while (await api.get(job.id)).progress is None and loop.time() < deadline:
            await asyncio.sleep(0.01)

        async def follow() -> list:
            seen = []
            async for update in api.watch(job.id, interval_s=0.05):
                seen.append(update)
                step.set()
            return seen

        seen = await asyncio.wait_for(follow(), 10)
    assert seen[0].progress is not None and seen[0].progress.message == "half"
    assert seen[-1].state == "success" and seen[-1].result == "done"


def test_sync_client_does_the_same_through_its_own_loop(live_url):
    with Client(live_url) as api:
        job = api.submit("echo", {"x": 1}, priority=3)
        done = api.wait(job.id, timeout=5)
        assert done.result == {"x": 1} and done.priority == 3
        with pytest.raises(ApiError) as missing:
            api.get(ANY_ID)
        assert missing.value.code == "not_found"


@needs_route("POST", f"/async-process/{ANY_ID}/cancel")
async def test_cancel_ends_a_running_job_as_cancelled(make_client):
    registry = Registry()
    started = asyncio.Event()

    @registry.process("forever")
    async def forever(ctx, data):
        started.set()
        await asyncio.Event().wait()

    client = await make_client(registry)
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("forever")
        await asyncio.wait_for(started.wait(), 5)
        await api.cancel(job.id)
        done = await api.wait(job.id, timeout=5)
    assert done.state == "failure" and done.error.code == "cancelled"


@needs_route("POST", f"/async-process/{ANY_ID}/pause")
async def test_pause_and_resume_a_delayed_job(client):
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("echo", 1, delay=60)
        assert (await api.pause(job.id)).state == "paused"
        assert (await api.resume(job.id)).state == "queued"
        with pytest.raises(ApiError) as again:
            await api.resume(job.id)
    assert again.value.status == 409


@needs_route("GET", "/async-process/")
async def test_list_iterates_every_page(client):
    async with AsyncClient(_url(client)) as api:
        ids = {(await api.submit("echo", n)).id for n in range(5)}
        listed = [job.id async for job in api.list(process="echo", page_size=2)]
    assert set(listed) == ids and len(listed) == 5


@needs_route("GET", f"/async-process/{ANY_ID}/events")
async def test_events_of_one_job_end_with_its_terminal_state(client):
    async with AsyncClient(_url(client)) as api:
        job = await api.submit("sleep", {"seconds": 0.2})

        async def states() -> list[str]:
            return [update.state async for update in api.events(job.id)]

        states = await asyncio.wait_for(states(), 10)
    assert states[-1] == "success"
