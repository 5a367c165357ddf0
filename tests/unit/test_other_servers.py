"""What another server on the same database did reaches this engine through the store's
listener (``StoreListener``): here a second store on the same SQLite file plays the other
server, and the test calls the listener as a shared backend (PostgreSQL) would."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.models import ErrorCode, JobState, error_json, now_ms
from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job


@pytest.fixture
async def servers(tmp_path):
    """(engine of this server, its store, the other server's store) on one file."""
    registry = Registry()
    events = {"started": asyncio.Event(), "cancelled": asyncio.Event()}

    @registry.process("hold")
    async def hold(ctx, data):
        events["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events["cancelled"].set()
            raise

    @registry.process("echo")
    async def echo(ctx, data):
        return data

    path = str(tmp_path / "shared.db")
    here, there = SQLiteStore(path), SQLiteStore(path)
    await here.open()
    await there.open()
    engine = Engine(here, registry, EngineSettings(workers=2))
    await engine.start()
    yield engine, here, there, events
    await engine.drain(0)
    await here.close()
    await there.close()


def tell(store, method: str, *args) -> None:
    for listener in store.listeners:
        getattr(listener, method)(*args)


async def test_a_job_queued_by_another_server_runs_here_once_it_is_told(servers):
    engine, here, there, _ = servers
    job = make_job(process="echo", input=b"7")
    await there.insert([job])
    tell(here, "jobs_due", job.scheduled_at_ms)
    ended = await engine.wait(job.id, 5)
    assert ended.state is JobState.SUCCESS and ended.result == b"7"


async def test_a_cancel_on_another_server_stops_the_handler_here_and_ends_the_waiters(servers):
    engine, here, there, events = servers
    job = await engine.submit("hold", None)
    await asyncio.wait_for(events["started"].wait(), 5)
    waiting = asyncio.ensure_future(engine.wait(job.id, 10))
    error = error_json(ErrorCode.CANCELLED, "cancelled by a client")
    assert await there.cancel(job.id, error=error, ended_at_ms=now_ms()) is not None
    tell(here, "job_changed", job.id)
    ended = await asyncio.wait_for(waiting, 5)
    assert ended.state is JobState.FAILURE and ended.error == error
    await asyncio.wait_for(events["cancelled"].wait(), 5)
    assert (await here.get(job.id)).error == error  # the handler's end did not overwrite it


async def test_a_pause_on_another_server_holds_the_handler_here_until_resumed(servers):
    engine, here, there, events = servers
    job = await engine.submit("hold", None)
    await asyncio.wait_for(events["started"].wait(), 5)
    run = engine.pool.running[job.id]
    await there.pause(job.id)
    tell(here, "job_changed", job.id)
    deadline = asyncio.get_running_loop().time() + 5
    while not run.ctx.paused:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)
    await there.resume(job.id, running=True)
    tell(here, "job_changed", job.id)
    while run.ctx.paused:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)
