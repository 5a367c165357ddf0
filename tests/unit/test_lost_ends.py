"""A job's end is never lost when the store refuses its write (issue 10, item 3).

The store is a real SQLite file whose writes fail on demand (``tests.faults``), as on a
full disk: the outcome stays in memory, its write is retried until the store takes it, the
worker and the counts stay consistent meanwhile, and nothing that finished is recovered as
interrupted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.errors import Unavailable
from aioqueue.models import Job, JobState
from tests.faults import FaultyStore

SETTINGS = EngineSettings(workers=2, retry_base_s=0.01, retry_max_s=0.02,
                          write_retry_base_s=0.01, write_retry_max_s=0.05)


async def until(check: Callable[[], bool], timeout_s: float = 5) -> None:
    """Poll ``check`` until it holds, failing after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


@pytest.fixture
def gate():
    """A process ``gate`` that runs until ``release`` is set, and counts its runs."""
    registry = Registry()
    started, release, runs = asyncio.Event(), asyncio.Event(), []

    @registry.process("gate", max_attempts=3)
    async def gate_handler(ctx, data):
        runs.append(ctx.job_id)
        started.set()
        await release.wait()
        if data == "fail":
            raise RuntimeError("try again")
        return "done"

    return registry, started, release, runs


async def end_refused(engine: Engine, store: FaultyStore, gate, data=None) -> Job:
    """Submit a ``gate`` job and let it end while the store refuses writes."""
    _, started, release, _ = gate
    job = await engine.submit("gate", data)
    await asyncio.wait_for(started.wait(), 5)
    store.failing = True
    release.set()
    await until(lambda: engine.health.pending_ends == 1)
    return job


@pytest.fixture
async def open_engine(tmp_path):
    made: list[tuple[Engine, FaultyStore]] = []

    async def open_(registry: Registry) -> tuple[Engine, FaultyStore]:
        store = FaultyStore(str(tmp_path / "jobs.db"))
        await store.open()
        engine = Engine(store, registry, SETTINGS)
        await engine.start()
        made.append((engine, store))
        return engine, store

    yield open_
    for engine, store in made:
        store.failing = False
        await engine.drain(0)
        await store.close()


async def test_a_refused_end_is_kept_retried_and_stored_once_writes_work(open_engine, gate):
    registry, runs = gate[0], gate[3]
    engine, store = await open_engine(registry)
    job = await end_refused(engine, store, gate)
    waiting = asyncio.ensure_future(engine.wait(job.id, 10))
    assert engine.health.degraded
    assert not await engine.health.check()  # the probe write is refused too
    # the store still says running, and so does everything else that counts
    assert (await store.get(job.id)).state is JobState.RUNNING
    counts, running = await engine.figures()
    assert counts["running"] == running == 1
    assert engine.pool.free == 1 and job.id in engine.pool.running
    with pytest.raises(Unavailable):
        await engine.submit("gate", None)
    assert not waiting.done()

    store.failing = False
    ended = await asyncio.wait_for(waiting, 5)
    assert ended.state is JobState.SUCCESS and orjson.loads(ended.result) == "done"
    assert (await store.get(job.id)) == ended
    assert engine.health.pending_ends == 0 and not engine.health.degraded
    await until(lambda: engine.pool.free == 2 and not engine.pool.running)
    assert runs == [job.id]


async def test_an_idle_server_finds_out_by_itself_that_writes_work_again(open_engine, gate):
    engine, store = await open_engine(gate[0])
    store.failing = True
    with pytest.raises(Unavailable):
        await engine.submit("gate", None, delay_s=60)
    assert engine.health.degraded and not await engine.health.check()
    store.failing = False
    assert await engine.health.check()  # a probe write, not a client's, tells
    assert not engine.health.degraded


async def test_a_refused_retry_is_kept_and_the_job_runs_again_once_stored(open_engine, gate):
    runs = gate[3]
    engine, store = await open_engine(gate[0])
    job = await end_refused(engine, store, gate, "fail")
    store.failing = False
    await until(lambda: len(runs) == 3)
    ended = await engine.wait(job.id, 5)
    assert (ended.state, ended.attempts) == (JobState.FAILURE, 3)


async def test_a_success_stored_late_stays_a_success_after_a_restart(open_engine, gate):
    registry, runs = gate[0], gate[3]
    engine, store = await open_engine(registry)
    job = await end_refused(engine, store, gate)
    store.failing = False
    await engine.wait(job.id, 5)
    await engine.drain(0)
    await store.close()
    engine, store = await open_engine(registry)  # recovery runs on start
    stored = await store.get(job.id)
    assert stored.state is JobState.SUCCESS and orjson.loads(stored.result) == "done"
    assert runs == [job.id]


async def test_a_drain_gives_up_an_end_the_store_still_refuses_and_does_not_hang(
        open_engine, gate, caplog):
    engine, store = await open_engine(gate[0])
    job = await end_refused(engine, store, gate)
    await asyncio.wait_for(engine.drain(0.05), 5)
    assert f"job {job.id}: the store still refuses its outcome" in caplog.text
    assert engine.health.pending_ends == 0


class RefusingStore(FaultyStore):
    """While ``refusing``, an end is refused before it is queued, as a closed store does."""

    refusing = False

    def finish_soon(self, *args, **kwargs):
        if self.refusing:
            raise Unavailable("the store is closed")
        return super().finish_soon(*args, **kwargs)


async def test_an_end_refused_before_it_is_queued_is_kept_and_stored_later(tmp_path, gate):
    """``finish_soon`` may refuse at once instead of through its future: the outcome is
    still kept and retried, and the job stays running until it is stored."""
    registry, started, release, runs = gate
    store = RefusingStore(str(tmp_path / "jobs.db"))
    await store.open()
    engine = Engine(store, registry, SETTINGS)
    await engine.start()
    try:
        job = await engine.submit("gate", None)
        await asyncio.wait_for(started.wait(), 5)
        store.refusing = True
        release.set()
        await until(lambda: engine.health.pending_ends == 1)
        assert job.id in engine.pool.running
        assert (await store.get(job.id)).state is JobState.RUNNING
        store.refusing = False
        ended = await engine.wait(job.id, 5)
        assert ended.state is JobState.SUCCESS and (await store.get(job.id)) == ended
        await until(lambda: not engine.pool.running and engine.health.pending_ends == 0)
        assert runs == [job.id]
    finally:
        await engine.drain(0)
        await store.close()
