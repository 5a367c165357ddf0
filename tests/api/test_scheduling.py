"""Retries with backoff, timeouts, concurrency limits, priorities, delays and run_at."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from aioqueue.http.keys import ENGINE
from aioqueue.engine import Registry
from aioqueue.engine.retry import RetryPolicy
from aioqueue.models import now_ms
from aioqueue.processes import BUILTINS

from tests.helpers.lifecycle import BASE, get, submit, until


def ms(stamp: str) -> int:
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)


async def test_a_failing_job_is_retried_until_it_succeeds(make_client):
    registry = Registry()
    calls = []

    @registry.process("flaky", max_attempts=3)
    async def flaky(ctx, data):
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return "third time"

    client = await make_client(registry)
    job = await submit(client, "flaky")
    final = await until(client, job["id"], lambda j: j["state"] == "success")
    assert final["attempts"] == 3 and final["max_attempts"] == 3
    assert calls == [1, 2, 3]


async def test_attempts_stop_at_max_attempts(make_client):
    registry = Registry()

    @registry.process("broken", max_attempts=2)
    async def broken(ctx, data):
        raise RuntimeError("no")

    client = await make_client(registry)
    job = await submit(client, "broken")
    final = await until(client, job["id"], lambda j: j["state"] == "failure")
    assert final["attempts"] == 2
    assert final["error"]["code"] == "exception"


async def test_between_attempts_the_job_is_queued_with_a_future_scheduled_at(make_client):
    registry = Registry()

    @registry.process("broken", max_attempts=2)
    async def broken(ctx, data):
        raise RuntimeError("no")

    client = await make_client(registry, engine={"retry_base_s": 30.0, "retry_max_s": 60.0})
    job = await submit(client, "broken")
    waiting = await until(client, job["id"],
                          lambda j: j["attempts"] == 1 and j["state"] == "queued")
    # backoff 30 s with +-50% jitter
    delay_ms = ms(waiting["scheduled_at"]) - now_ms()
    assert 14_000 <= delay_ms <= 45_000
    await client.post(f"{BASE}{job['id']}/cancel")


def test_backoff_grows_exponentially_with_jitter_and_is_capped(settings):
    policy = RetryPolicy(base_s=1.0, max_s=10.0)
    for attempts, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)):
        samples = [policy.delay_s(attempts) for _ in range(50)]
        assert all(0.5 * base <= s <= 1.5 * base for s in samples), (attempts, samples)
        assert len(set(samples)) > 1  # jittered, so retries of many jobs spread out


async def test_timeout_cancels_the_handler_and_fails_the_job(make_client):
    registry = Registry()
    cancelled = asyncio.Event()

    @registry.process("slow", timeout=0.05)
    async def slow(ctx, data):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = await make_client(registry)
    job = await submit(client, "slow", None, "&return_timeout=5")
    assert job["state"] == "failure"
    assert job["error"]["code"] == "timeout"
    assert cancelled.is_set()


async def test_paused_time_does_not_count_towards_the_timeout(make_client):
    registry = Registry()
    started, release = asyncio.Event(), asyncio.Event()

    @registry.process("patient", timeout=0.2)
    async def patient(ctx, data):
        started.set()
        await release.wait()
        await ctx.checkpoint()
        return "in time"

    client = await make_client(registry)
    job = await submit(client, "patient")
    await asyncio.wait_for(started.wait(), 5)
    await client.post(f"{BASE}{job['id']}/pause")
    release.set()
    # held paused for longer than its timeout: the time under test has to pass
    loop = asyncio.get_running_loop()
    held_until = loop.time() + 0.35
    while loop.time() < held_until:
        assert (await get(client, job["id"]))["state"] == "paused"
        await asyncio.sleep(0.02)
    await client.post(f"{BASE}{job['id']}/resume")
    final = await get(client, job["id"], "?return_timeout=5")
    assert final["state"] == "success" and final["result"] == "in time"


async def test_concurrency_limit_holds_jobs_of_a_full_process_but_not_others(make_client):
    registry = Registry()
    registry.update(BUILTINS)
    release = asyncio.Event()
    active, peak = [0], [0]

    @registry.process("single", concurrency=1)
    async def single(ctx, data):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            await release.wait()
        finally:
            active[0] -= 1
        return data

    client = await make_client(registry, engine={"workers": 4})
    jobs = [await submit(client, "single", n) for n in range(3)]
    first = await until(client, jobs[0]["id"], lambda j: j["state"] == "running")
    assert first["attempts"] == 1
    # other processes still get the free workers
    assert (await submit(client, "echo", "other", "&return_timeout=5"))["state"] == "success"
    listing = await (await client.get(f"{BASE}?process=single")).json()
    assert sorted(j["state"] for j in listing["jobs"]) == ["queued", "queued", "running"]
    release.set()
    for job in jobs:
        assert (await get(client, job["id"], "?return_timeout=5"))["state"] == "success"
    assert peak[0] == 1


async def test_higher_priority_runs_first(make_client):
    registry = Registry()
    registry.update(BUILTINS)
    release = asyncio.Event()
    order = []

    @registry.process("block")
    async def block(ctx, data):
        await release.wait()

    @registry.process("note")
    async def note(ctx, data):
        order.append(data)

    client = await make_client(registry, engine={"workers": 1})
    await submit(client, "block")
    for name, priority in (("low", 0), ("high", 5), ("mid", 1), ("negative", -3)):
        await submit(client, "note", name, f"&priority={priority}")
    release.set()
    last = await (await client.get(f"{BASE}?process=note&limit=1")).json()
    await get(client, last["jobs"][0]["id"], "?return_timeout=5")
    listing = await (await client.get(f"{BASE}?process=note")).json()
    for job in listing["jobs"]:
        await get(client, job["id"], "?return_timeout=5")
    assert order == ["high", "mid", "low", "negative"]


async def test_a_delayed_job_starts_at_its_time_without_polling_the_database(client):
    store = client.server.app[ENGINE].store
    job = await submit(client, "echo", "later", "&delay=0.3")
    assert job["state"] == "queued"
    assert ms(job["scheduled_at"]) - ms(job["created_at"]) == 300
    commits = store.commits
    final = await get(client, job["id"], "?return_timeout=5")
    assert final["state"] == "success"
    assert ms(final["started_at"]) >= ms(final["scheduled_at"])
    # one claim and one end: the dispatcher slept until the job was due
    assert store.commits - commits <= 3


async def test_run_at_schedules_the_job_at_that_time(client):
    when = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    stamp = when.isoformat().replace("+00:00", "Z")
    job = await submit(client, "echo", 1, f"&run_at={stamp}")
    assert job["state"] == "queued"
    assert abs(ms(job["scheduled_at"]) - round(when.timestamp() * 1000)) <= 1
    final = await get(client, job["id"], "?return_timeout=5")
    assert final["state"] == "success"
    assert ms(final["started_at"]) >= ms(final["scheduled_at"])


async def test_run_at_in_the_past_runs_now(client):
    job = await submit(client, "echo", 1, "&run_at=2020-01-01T00:00:00%2B00:00&return_timeout=5")
    assert job["state"] == "success"


@pytest.mark.parametrize(
    "query",
    ["run_at=tomorrow", "run_at=2026-11-25T17:00:00", "run_at=2999-01-01T00:00:00Z",
     "run_at=2026-11-25T17:00:00Z&delay=1", "delay=inf", "priority=99999999999"],
)
async def test_bad_schedules_are_400(client, query):
    resp = await client.post(f"{BASE}?process=echo&{query}", json=1)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_request"
