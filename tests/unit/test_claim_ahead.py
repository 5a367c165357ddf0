"""Claim-ahead (issue 15): a few jobs claimed beyond the free workers wait, running in the
store, for the next free worker, which takes one at once while its last job's end is still
being committed.

The engines here have one worker and a fixed claim-ahead (``Fixed``), so what is buffered
is known; the adaptive rule itself is tested on its own at the end. ``HeldStore`` is a real
SQLite store whose commits can be held back, to show what runs while a commit is pending.
"""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.engine.pool import ClaimAhead
from aioqueue.models import ErrorCode, JobState, now_ms
from aioqueue.store.sqlite import SQLiteStore
from tests.unit.test_lost_ends import until


class HeldStore(SQLiteStore):
    """Commits wait while ``held`` is set (the writes queue up for the next one): the
    writer's thread waits before each commit until it is cleared."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._go = threading.Event()
        self._go.set()
        commit = self._group._commit

        def held_commit(conn, batch):
            self._go.wait(10)
            return commit(conn, batch)

        self._group._commit = held_commit

    @property
    def held(self) -> bool:
        return not self._go.is_set()

    @held.setter
    def held(self, value: bool) -> None:
        if value:
            self._go.clear()
        else:
            self._go.set()


class Fixed:
    """Claim exactly ``jobs`` ahead, whatever the jobs' run times."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def ran(self, seconds: float) -> None:
        pass

    def claimed(self, seconds: float) -> None:
        pass


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def gate(registry):
    """``gate`` holds the one worker until ``release``; ``note`` records its runs."""
    release = asyncio.Event()
    runs: list[object] = []

    @registry.process("gate")
    async def gate_handler(ctx, data):
        runs.append("gate")
        await release.wait()

    @registry.process("note", max_attempts=2)
    async def note(ctx, data):
        runs.append(data)
        return data

    return release, runs


@pytest.fixture
async def make_engine(tmp_path, registry):
    made: list[tuple[Engine, HeldStore]] = []

    async def make(*, ahead: int, workers: int = 1) -> Engine:
        store = HeldStore(str(tmp_path / "ahead.db"))
        await store.open()
        engine = Engine(store, registry, EngineSettings(workers=workers, claim_ahead=ahead,
                                                        retry_base_s=0.01, retry_max_s=0.02))
        engine.pool.ahead = Fixed(ahead)
        await engine.start()
        made.append((engine, store))
        return engine

    yield make
    for engine, store in made:
        store.held = False
        await engine.drain(0)
        await store.close()


async def buffered(engine: Engine, gate, items: list) -> list:
    """The gate holds the one worker; ``items`` are queued as ``note`` jobs and claimed
    ahead, to wait for that worker."""
    await engine.submit("gate", None)
    await until(lambda: gate[1] == ["gate"])
    jobs = await engine.submit_bulk("note", items)
    await until(lambda: len(engine.pool.running) == 1 + len(items))
    return jobs


async def test_a_claimed_ahead_job_is_running_in_the_store_before_its_handler_starts(
        make_engine, gate):
    engine = await make_engine(ahead=2)
    jobs = await buffered(engine, gate, [1, 2])
    for job in jobs:
        stored = await engine.get(job.id)
        assert (stored.state, stored.attempts) == (JobState.RUNNING, 1)
        assert stored.started_at_ms is not None  # the claim's time (docs/decisions.md)
    assert gate[1] == ["gate"]  # neither has run


async def test_a_worker_takes_the_next_job_while_its_last_end_waits_for_its_commit(
        make_engine, gate):
    release, runs = gate
    engine = await make_engine(ahead=3)
    jobs = await buffered(engine, gate, [1, 2, 3])
    commits = engine.store.commits
    engine.store.held = True
    release.set()
    # the gate's end and then each note's end wait for a commit; the worker does not
    await until(lambda: runs == ["gate", 1, 2, 3])
    assert engine.store.commits == commits
    assert [(await engine.get(j.id)).state for j in jobs] == [JobState.RUNNING] * 3
    engine.store.held = False
    for job in jobs:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS


async def test_a_cancelled_buffered_job_never_runs_and_stays_cancelled(make_engine, gate):
    release, runs = gate
    engine = await make_engine(ahead=2)
    first, second = await buffered(engine, gate, [1, 2])
    cancelled = await engine.cancel(first.id)
    assert orjson.loads(cancelled.error)["code"] == ErrorCode.CANCELLED.value
    release.set()
    assert (await engine.wait(second.id, 5)).state is JobState.SUCCESS
    await until(lambda: first.id not in engine.pool.running)
    assert runs == ["gate", 2]
    assert (await engine.get(first.id)).state is JobState.FAILURE


async def test_a_drain_gives_buffered_jobs_back_unrun_with_their_attempt(make_engine, gate):
    _, runs = gate
    engine = await make_engine(ahead=3)
    jobs = await buffered(engine, gate, [1, 2, 3])
    await engine.drain(0.05)
    assert runs == ["gate"]
    assert not engine.pool.running
    for job in jobs:
        stored = await engine.get(job.id)
        assert (stored.state, stored.attempts) == (JobState.QUEUED, 0)


async def test_a_job_of_higher_priority_claimed_later_runs_before_the_buffered_ones(
        make_engine, gate):
    release, runs = gate
    engine = await make_engine(ahead=3)
    low = await buffered(engine, gate, ["low 1", "low 2"])
    high = await engine.submit("note", "high", priority=5)
    await until(lambda: high.id in engine.pool.running)
    release.set()
    for job in [*low, high]:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    assert runs == ["gate", "high", "low 1", "low 2"]


async def test_claim_ahead_never_claims_past_a_process_concurrency_limit(
        make_engine, registry):
    seen: list[int] = []

    @registry.process("limited", concurrency=1)
    async def limited(ctx, data):
        seen.append(len(await engine.store.list_jobs(process="limited",
                                                     state=JobState.RUNNING)))

    engine = await make_engine(ahead=4, workers=2)
    jobs = await engine.submit_bulk("limited", list(range(6)))
    for job in jobs:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    assert seen == [1] * 6


async def test_claim_ahead_never_makes_a_batch_larger_than_its_size(make_engine, registry):
    sizes: list[int] = []

    @registry.process("batched", batch_size=3)
    async def batched(ctx, items):
        sizes.append(len(items))
        return items

    engine = await make_engine(ahead=4, workers=2)
    jobs = await engine.submit_bulk("batched", list(range(10)))
    for job in jobs:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    assert max(sizes) <= 3 and sum(sizes) == 10


def test_the_adaptive_target_covers_the_ends_of_one_claim_and_no_more():
    ahead = ClaimAhead(32, workers=4)
    assert ahead.jobs == 0  # nothing known yet: nothing ahead
    for _ in range(20):
        ahead.ran(0.0005)
        ahead.claimed(0.002)
    assert ahead.jobs == 16  # 4 workers x 4 runs per claim
    for _ in range(20):
        ahead.ran(0.0001)
        ahead.claimed(0.003)
    assert ahead.jobs == 32  # bounded by engine.claim_ahead
    for _ in range(100):
        ahead.ran(2.0)  # jobs now run longer than a claim takes
        ahead.claimed(0.002)
    assert ahead.jobs == 0
    off = ClaimAhead(0, workers=4)
    off.ran(0.0001)
    off.claimed(0.01)
    assert off.jobs == 0


async def test_on_postgres_a_buffered_job_stays_leased_to_its_server_until_it_runs(
        pg_url, registry, gate):
    """Its claim token and lease are this server's, renewed by its heartbeat like any
    running job's: another server can neither claim nor rescue it while this one lives."""
    from aioqueue.store.postgres import PostgresStore

    release, runs = gate
    here, there = PostgresStore(pg_url, lease_s=0.5), PostgresStore(pg_url, lease_s=0.5)
    await here.open()
    await there.open()
    engine = Engine(here, registry, EngineSettings(workers=1, claim_ahead=2))
    engine.pool.ahead = Fixed(2)
    await engine.start()
    try:
        jobs = await buffered(engine, gate, [1, 2])
        query = "SELECT node, claim, lease_until_ms FROM jobs WHERE id = $1"
        first = [await there._fetch(query, job.id) for job in jobs]
        for job, [(node, claim, _)] in zip(jobs, first):
            assert (node, claim) == (here.node, engine.pool.running[job.id].job.claim)
        assert await there.claim(10, now_ms()) == []

        async def renewed() -> bool:  # by here's heartbeat, past the first lease's end
            rows = [await there._fetch(query, job.id) for job in jobs]
            return all(row[0][2] > old[0][2] + 500 for row, old in zip(rows, first))

        deadline = asyncio.get_running_loop().time() + 10
        while not await renewed():
            assert asyncio.get_running_loop().time() < deadline, "leases not renewed"
            await asyncio.sleep(0.05)
        assert await there.recover(now_ms()) == (0, 0)  # nothing of here's is rescued
        release.set()
        for job in jobs:
            ended = await engine.wait(job.id, 10)
            assert (ended.state, ended.attempts) == (JobState.SUCCESS, 1)
        assert runs == ["gate", 1, 2]
    finally:
        await engine.drain(0)
        await here.close()
        await there.close()
