"""Helpers shared by the job-lifecycle API tests."""

from __future__ import annotations

import asyncio

from aioqueue.engine import Registry
from aioqueue.processes import BUILTINS

BASE = "/async-process/"


async def submit(client, process, data=None, query="", headers=None):
    resp = await client.post(f"{BASE}?process={process}{query}", json=data, headers=headers)
    assert resp.status in (200, 202), await resp.text()
    return await resp.json()


async def get(client, job_id, query=""):
    resp = await client.get(f"{BASE}{job_id}{query}")
    assert resp.status == 200
    return await resp.json()


async def until(client, job_id, predicate, timeout_s=5.0):
    """Poll the job until ``predicate(job)`` holds, failing after a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        job = await get(client, job_id)
        if predicate(job):
            return job
        assert loop.time() < deadline, f"gave up waiting; job is {job}"
        await asyncio.sleep(0.005)


def gated_registry():
    """``gate``: an async handler that announces itself, waits for a release, then checkpoints."""
    registry = Registry()
    registry.update(BUILTINS)
    events = {"started": asyncio.Event(), "release": asyncio.Event(),
              "at_checkpoint": asyncio.Event(), "passed": asyncio.Event(),
              "cancelled": asyncio.Event()}

    @registry.process("gate")
    async def gate(ctx, data):
        events["started"].set()
        try:
            await events["release"].wait()
            events["at_checkpoint"].set()
            await ctx.checkpoint()
            events["passed"].set()
            return "done"
        except asyncio.CancelledError:
            events["cancelled"].set()
            raise

    return registry, events
