"""Cancel, pause, resume and delete through the HTTP API, including the races between them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from aioqueue.http.keys import ENGINE
from aioqueue.engine import Registry

from tests.helpers.lifecycle import BASE, gated_registry, get, submit, until

# ------------------------------------------------------------------------------ cancel

async def test_cancel_of_a_queued_job_ends_it_at_once(client):
    job = await submit(client, "echo", 1, "&delay=60")
    resp = await client.post(f"{BASE}{job['id']}/cancel")
    assert resp.status == 200
    body = await resp.json()
    assert body["state"] == "failure"
    assert body["error"]["code"] == "cancelled"
    assert body["ended_at"] is not None
    assert (await get(client, job["id"]))["state"] == "failure"


async def test_cancel_of_a_running_async_job_cancels_its_handler_task(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    waiting = asyncio.ensure_future(client.get(f"{BASE}{job['id']}?return_timeout=5"))
    resp = await client.post(f"{BASE}{job['id']}/cancel")
    assert resp.status == 200
    assert (await resp.json())["error"]["code"] == "cancelled"
    await asyncio.wait_for(events["cancelled"].wait(), 5)
    long_poll = await waiting
    assert (await long_poll.json())["state"] == "failure"
    assert not events["passed"].is_set()


async def test_cancel_of_a_thread_handler_is_seen_at_its_checkpoint(make_client):
    registry = Registry()
    started, stopped = threading.Event(), threading.Event()

    @registry.process("spin")
    def spin(ctx, data):
        started.set()
        try:
            while True:
                ctx.checkpoint()
                if stopped.wait(0.001):
                    return "never cancelled"
        except Exception as exc:
            stopped.set()
            return type(exc).__name__ + (" cancelled" if ctx.cancelled else "")

    client = await make_client(registry)
    job = await submit(client, "spin")
    assert await asyncio.to_thread(started.wait, 5)
    body = await (await client.post(f"{BASE}{job['id']}/cancel")).json()
    assert body["state"] == "failure" and body["error"]["code"] == "cancelled"
    assert await asyncio.to_thread(stopped.wait, 5)
    # the thread's late return value never overwrites the cancel
    final = await get(client, job["id"])
    assert final["state"] == "failure" and final["result"] is None


async def test_cancel_of_a_terminal_job_is_409_naming_its_state(client):
    job = await submit(client, "echo", 1, "&return_timeout=5")
    resp = await client.post(f"{BASE}{job['id']}/cancel")
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_transition"
    assert error["message"] == "cannot cancel a job that has already ended in success"
    assert error["details"] == {"state": "success"}


@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
async def test_control_of_an_unknown_job_is_404(client, action):
    resp = await client.post(f"{BASE}{'0' * 32}/{action}")
    assert resp.status == 404
    assert (await client.post(f"{BASE}nope/{action}")).status == 404


# ------------------------------------------------------------------------------ pause / resume

async def test_a_paused_queued_job_is_never_claimed_until_resumed(make_client):
    registry, events = gated_registry()
    client = await make_client(registry, engine={"workers": 1})
    blocker = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    held = await submit(client, "echo", "held")
    assert held["state"] == "queued"
    resp = await client.post(f"{BASE}{held['id']}/pause")
    assert resp.status == 200 and (await resp.json())["state"] == "paused"
    events["release"].set()
    assert (await get(client, blocker["id"], "?return_timeout=5"))["state"] == "success"
    # a later job runs on the freed worker while the paused one, older, is skipped
    later = await submit(client, "echo", "later", "&return_timeout=5")
    assert later["state"] == "success"
    still = await get(client, held["id"])
    assert still["state"] == "paused" and still["attempts"] == 0
    resumed = await (await client.post(f"{BASE}{held['id']}/resume")).json()
    assert resumed["state"] == "queued"
    assert (await get(client, held["id"], "?return_timeout=5"))["result"] == "held"


async def test_a_running_async_job_pauses_at_its_checkpoint_and_resume_continues_it(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    resp = await client.post(f"{BASE}{job['id']}/pause")
    assert resp.status == 200 and (await resp.json())["state"] == "paused"
    events["release"].set()
    await asyncio.wait_for(events["at_checkpoint"].wait(), 5)
    assert (await get(client, job["id"]))["state"] == "paused"
    assert not events["passed"].is_set()
    resp = await client.post(f"{BASE}{job['id']}/resume")
    assert resp.status == 200 and (await resp.json())["state"] == "running"
    final = await get(client, job["id"], "?return_timeout=5")
    assert final["state"] == "success" and final["attempts"] == 1
    assert events["passed"].is_set()


async def test_a_thread_handler_blocks_at_its_checkpoint_while_paused(make_client):
    registry = Registry()
    release, at_checkpoint, passed = threading.Event(), threading.Event(), threading.Event()

    @registry.process("worker")
    def worker(ctx, data):
        assert release.wait(10)
        at_checkpoint.set()
        ctx.checkpoint()
        passed.set()
        return "resumed"

    client = await make_client(registry)
    job = await submit(client, "worker")
    assert (await (await client.post(f"{BASE}{job['id']}/pause")).json())["state"] == "paused"
    release.set()
    assert await asyncio.to_thread(at_checkpoint.wait, 5)
    assert (await get(client, job["id"]))["state"] == "paused"
    assert not await asyncio.to_thread(passed.wait, 0.05)
    await client.post(f"{BASE}{job['id']}/resume")
    final = await get(client, job["id"], "?return_timeout=5")
    assert final["state"] == "success" and final["result"] == "resumed"


async def test_invalid_transitions_are_409_naming_the_current_state(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    resp = await client.post(f"{BASE}{job['id']}/resume")
    assert resp.status == 409
    assert "running" in (await resp.json())["error"]["message"]
    await client.post(f"{BASE}{job['id']}/pause")
    resp = await client.post(f"{BASE}{job['id']}/pause")
    assert resp.status == 409
    body = await resp.json()
    assert "paused" in body["error"]["message"]
    assert body["error"]["details"] == {"state": "paused"}
    await client.post(f"{BASE}{job['id']}/cancel")
    for action in ("resume", "pause", "cancel"):
        resp = await client.post(f"{BASE}{job['id']}/{action}")
        assert resp.status == 409, action
        assert "failure" in (await resp.json())["error"]["message"]


async def test_pause_and_cancel_together_end_cancelled_and_free_the_worker(make_client):
    registry, events = gated_registry()
    client = await make_client(registry, engine={"workers": 1})
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    pause, cancel = await asyncio.gather(
        client.post(f"{BASE}{job['id']}/pause"), client.post(f"{BASE}{job['id']}/cancel")
    )
    events["release"].set()
    assert pause.status in (200, 409)  # 409 when the cancel committed first
    assert cancel.status == 200
    await asyncio.wait_for(events["cancelled"].wait(), 5)
    assert not events["passed"].is_set()
    final = await get(client, job["id"])
    assert final["state"] == "failure" and final["error"]["code"] == "cancelled"
    # the one worker is free again
    assert (await submit(client, "echo", 2, "&return_timeout=5"))["state"] == "success"


async def test_resume_of_a_cancelled_paused_job_is_409(client):
    job = await submit(client, "echo", 1, "&delay=60")
    assert (await (await client.post(f"{BASE}{job['id']}/pause")).json())["state"] == "paused"
    cancelled = await (await client.post(f"{BASE}{job['id']}/cancel")).json()
    assert cancelled["state"] == "failure"
    resp = await client.post(f"{BASE}{job['id']}/resume")
    assert resp.status == 409
    assert "failure" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("round_", range(8))
async def test_cancel_while_the_job_is_being_claimed_never_runs_it_to_success(make_client, round_):
    registry, events = gated_registry()
    client = await make_client(registry, engine={"workers": 1})
    blocker = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    # a victim that takes a moment: a claim riding on the blocker's end is quick, and an
    # instant one could end before the cancel arrives, which would then race nothing
    victim = await submit(client, "sleep", {"seconds": 5})
    assert victim["state"] == "queued"
    # freeing the worker starts a claim; the cancel races with it
    loop = asyncio.get_running_loop()
    for _ in range(round_):
        await asyncio.sleep(0)
    loop.call_soon(events["release"].set)
    cancel = await client.post(f"{BASE}{victim['id']}/cancel")
    assert cancel.status == 200
    assert (await get(client, blocker["id"], "?return_timeout=5"))["state"] == "success"
    final = await get(client, victim["id"])
    assert final["state"] == "failure" and final["error"]["code"] == "cancelled"
    assert final["result"] is None and final["attempts"] <= 1
    assert (await submit(client, "echo", 3, "&return_timeout=5"))["state"] == "success"


# ------------------------------------------------------------------------------ delete

async def test_delete_removes_a_terminal_job_and_refuses_an_active_one(client):
    done = await submit(client, "echo", 1, "&return_timeout=5")
    active = await submit(client, "echo", 1, "&delay=60")
    resp = await client.delete(f"{BASE}{active['id']}")
    assert resp.status == 409
    assert "queued" in (await resp.json())["error"]["message"]
    resp = await client.delete(f"{BASE}{done['id']}")
    assert resp.status == 204
    assert (await client.get(f"{BASE}{done['id']}")).status == 404
    assert (await client.delete(f"{BASE}{done['id']}")).status == 404


async def test_delete_during_a_long_poll(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    poll = asyncio.ensure_future(client.get(f"{BASE}{job['id']}?return_timeout=10"))
    resp = await client.delete(f"{BASE}{job['id']}")
    assert resp.status == 409
    assert not poll.done()
    events["release"].set()
    answer = await poll
    assert answer.status == 200 and (await answer.json())["state"] == "success"
    assert (await client.delete(f"{BASE}{job['id']}")).status == 204
    assert (await client.get(f"{BASE}{job['id']}?return_timeout=1")).status == 404


async def test_engine_keeps_no_state_for_ended_jobs(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    engine = client.server.app[ENGINE]
    job = await submit(client, "gate")
    await asyncio.wait_for(events["started"].wait(), 5)
    await client.post(f"{BASE}{job['id']}/cancel")
    await until(client, job["id"], lambda j: j["state"] == "failure")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while engine.pool.running or engine.pool.busy:
        assert loop.time() < deadline, (engine.pool.running, engine.pool.busy)
        await asyncio.sleep(0.005)
