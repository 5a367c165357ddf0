"""What another server on the same database did reaches this engine through the store's
listener (``StoreListener``): here a second store on the same SQLite file plays the other
server, and the test calls the listener as a shared backend (PostgreSQL) would; the last
test uses two real PostgreSQL stores and their notices."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.models import ErrorCode, JobState, error_json, now_ms
from aioqueue.store.base import StoreListener
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


def count_reads(store) -> list[str]:
    """The ids ``store.get`` is asked for from now on."""
    reads: list[str] = []
    get = store.get

    async def counted(job_id, **kwargs):
        reads.append(job_id)
        return await get(job_id, **kwargs)

    store.get = counted
    return reads


async def ended_elsewhere(there) -> str:
    """A job another server ran and ended; its id."""
    job = make_job(process="echo", state=JobState.RUNNING, attempts=1, started_at_ms=now_ms())
    await there.insert([job])
    assert await there.finish(job, JobState.SUCCESS, result=b"1", error=None,
                              ended_at_ms=now_ms())
    return job.id


async def test_a_change_elsewhere_of_a_job_nothing_here_uses_is_not_read(servers):
    engine, here, there, _ = servers
    unused = [await ended_elsewhere(there) for _ in range(5)]
    watched = make_job(process="echo", state=JobState.RUNNING, attempts=1,
                       started_at_ms=now_ms())
    await there.insert([watched])
    reads = count_reads(here)
    waiting = asyncio.ensure_future(engine.wait(watched.id, 10))
    await asyncio.sleep(0)  # the waiter is registered
    for job_id in unused:
        tell(here, "job_changed", job_id)
    await there.finish(watched, JobState.SUCCESS, result=b"2", error=None, ended_at_ms=now_ms())
    tell(here, "job_changed", watched.id)
    ended = await asyncio.wait_for(waiting, 5)
    assert ended.state is JobState.SUCCESS and ended.result == b"2"  # the waiter's answer
    await asyncio.gather(*engine.control._following)
    assert set(reads) == {watched.id}  # the jobs nothing here waits for were never read


async def test_an_events_stream_here_still_hears_of_every_job_changed_elsewhere(servers):
    from aioqueue.http.hub import Hub

    engine, here, there, _ = servers
    hub = Hub()
    engine.observers.append(hub)
    job_id = await ended_elsewhere(there)
    with hub.subscribe() as everything:
        tell(here, "job_changed", job_id)
        [change] = await everything.next_changes(5)
    assert change.job.id == job_id and change.job.state is JobState.SUCCESS
    with hub.subscribe(job_id=job_id) as one:
        tell(here, "job_changed", job_id)
        [change] = await one.next_changes(5)
    assert change.job.id == job_id


class Heard(StoreListener):
    """The ids a store's listener was told of, to wait until notices have arrived."""

    def __init__(self) -> None:
        self.changed: set[str] = set()
        self.news = asyncio.Event()

    def job_changed(self, job_id: str) -> None:
        self.changed.add(job_id)
        self.news.set()

    async def until(self, ids: set[str], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not ids <= self.changed:
                self.news.clear()
                await self.news.wait()


async def test_on_postgres_a_server_reads_only_the_jobs_changed_elsewhere_it_waits_for(pg_url):
    from aioqueue.store.postgres import PostgresStore

    registry = Registry()
    registry.process("echo")(lambda ctx, data: data)
    here, there = PostgresStore(pg_url), PostgresStore(pg_url)
    await here.open()
    await there.open()
    engine = Engine(here, registry, EngineSettings(workers=1))
    await engine.start()
    heard = Heard()
    here.subscribe(heard)  # after the engine's: told once the engine was
    try:
        jobs = [make_job(process="echo", state=JobState.RUNNING, attempts=1,
                         started_at_ms=now_ms()) for _ in range(11)]
        await there.insert(jobs)
        reads = count_reads(here)
        watched = jobs[-1]
        waiting = asyncio.ensure_future(engine.wait(watched.id, 10))
        await asyncio.sleep(0)
        for job in jobs:
            assert await there.finish(job, JobState.SUCCESS, result=b"1", error=None,
                                      ended_at_ms=now_ms())
        assert (await asyncio.wait_for(waiting, 10)).state is JobState.SUCCESS
        await heard.until({job.id for job in jobs})
        await asyncio.gather(*engine.control._following)
        assert set(reads) == {watched.id}
    finally:
        await engine.drain(0)
        await here.close()
        await there.close()
