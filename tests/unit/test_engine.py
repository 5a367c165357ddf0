"""The engine with a real store: hand-off, dispatch, waiters, retries, timeouts, drain."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.errors import Unavailable
from aioqueue.models import JobState
from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
async def make_engine(tmp_path, registry):
    made: list[tuple[Engine, SQLiteStore]] = []

    async def make(workers: int = 2, path: str | None = None) -> Engine:
        store = SQLiteStore(path or str(tmp_path / "engine.db"))
        await store.open()
        engine = Engine(store, registry,
                        EngineSettings(workers=workers, retry_base_s=0.01, retry_max_s=0.02))
        await engine.start()
        made.append((engine, store))
        return engine

    yield make
    for engine, store in made:
        await engine.drain(0)
        await store.close()


def _hold(registry: Registry) -> asyncio.Event:
    """Register ``hold``, a process that never ends; the event is set once one starts."""
    started = asyncio.Event()

    @registry.process("hold")
    async def hold(ctx, data):
        started.set()
        await asyncio.Event().wait()

    return started


async def test_a_job_submitted_to_a_free_worker_starts_without_a_claim(make_engine, registry):
    started = _hold(registry)
    engine = await make_engine()
    commits = engine.store.commits
    job = await engine.submit("hold", None)
    assert job.state is JobState.RUNNING and job.attempts == 1
    await asyncio.wait_for(started.wait(), 5)
    assert engine.store.commits == commits + 1  # the insert was the only write


async def test_a_caller_gone_before_the_commit_leaves_its_job_stored_and_started(
        make_engine, registry):
    started = _hold(registry)
    engine = await make_engine()
    caller = asyncio.create_task(engine.submit("hold", None))
    await asyncio.sleep(0)  # it waits for the commit now
    assert not caller.done()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(started.wait(), 5)  # the follow-up ran: handed to its worker
    assert engine.backlog.size == 1  # its place was kept, not given back
    assert [j.state for _, j in await engine.store.list_jobs()] == [JobState.RUNNING]


async def test_wait_returns_the_terminal_job_with_its_result(make_engine, registry):
    @registry.process("double")
    async def double(ctx, data):
        return data * 2

    engine = await make_engine()
    job = await engine.submit("double", 21, wait_s=5)
    assert job.state is JobState.SUCCESS
    assert orjson.loads(job.result) == 42
    assert (await engine.get(job.id)) == job  # what the waiter got is what was committed


async def test_wait_that_times_out_returns_the_job_as_it_stands(make_engine, registry):
    release = asyncio.Event()

    @registry.process("slow")
    async def slow(ctx, data):
        await ctx.progress(10, "started")
        await release.wait()
        return "late"

    engine = await make_engine()
    job = await engine.submit("slow", None, wait_s=0.05)
    assert job.state is JobState.RUNNING
    release.set()
    final = await engine.wait(job.id, 5)
    assert final.state is JobState.SUCCESS and orjson.loads(final.result) == "late"


async def test_jobs_beyond_the_free_workers_queue_and_run_by_priority(make_engine, registry):
    release = asyncio.Event()
    order: list[int] = []

    @registry.process("gate")
    async def gate(ctx, data):
        await release.wait()

    @registry.process("record")
    async def record(ctx, data):
        order.append(data)

    engine = await make_engine(workers=1)
    blocker = await engine.submit("gate", None)
    queued = [await engine.submit("record", n, priority=n % 3) for n in range(6)]
    assert all(j.state is JobState.QUEUED for j in queued)
    release.set()
    for job in queued:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    assert (await engine.get(blocker.id)).state is JobState.SUCCESS
    assert order == [2, 5, 1, 4, 0, 3]


async def test_a_delayed_job_starts_at_its_time_not_before(make_engine, registry):
    ran_at: list[float] = []

    @registry.process("stamp")
    async def stamp(ctx, data):
        ran_at.append(asyncio.get_running_loop().time())

    engine = await make_engine()
    submitted = asyncio.get_running_loop().time()
    job = await engine.submit("stamp", None, delay_s=0.3)
    assert job.state is JobState.QUEUED
    assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    assert ran_at[0] - submitted >= 0.29


async def test_a_failing_handler_is_retried_until_its_attempts_run_out(make_engine, registry):
    calls: list[int] = []

    @registry.process("flaky", max_attempts=3)
    async def flaky(ctx, data):
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ValueError("not yet")
        return "third time"

    @registry.process("broken", max_attempts=2)
    async def broken(ctx, data):
        raise ValueError("never")

    engine = await make_engine()
    ok = await engine.wait((await engine.submit("flaky", None)).id, 5)
    assert (ok.state, ok.attempts, calls) == (JobState.SUCCESS, 3, [1, 2, 3])
    bad = await engine.wait((await engine.submit("broken", None)).id, 5)
    assert (bad.state, bad.attempts) == (JobState.FAILURE, 2)
    assert orjson.loads(bad.error) == {"code": "exception", "message": "ValueError: never"}


async def test_a_handler_past_its_timeout_fails_with_timeout(make_engine, registry):
    @registry.process("stuck", timeout=0.05)
    async def stuck(ctx, data):
        await asyncio.Event().wait()

    engine = await make_engine()
    job = await engine.wait((await engine.submit("stuck", None)).id, 5)
    assert job.state is JobState.FAILURE
    assert orjson.loads(job.error)["code"] == "timeout"


async def test_a_handler_without_a_timeout_pauses_resumes_and_is_cancelled(make_engine,
                                                                         registry):
    """Without a timeout the worker awaits the handler's task itself: a pause still holds
    it at its checkpoint, a resume lets it go on, and a cancel ends the job cancelled; a
    handler that swallows its cancel leaves the client's cancel standing."""
    reached, go, ended = asyncio.Event(), asyncio.Event(), []

    @registry.process("steps")
    async def steps(ctx, data):
        await go.wait()
        await ctx.checkpoint()  # held here while paused
        reached.set()
        if data == "swallow":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                ended.append(ctx.job_id)
                return "kept going"
        await asyncio.Event().wait()

    engine = await make_engine()
    job = await engine.submit("steps", None)
    await engine.pause(job.id)
    go.set()
    context = engine.pool.running[job.id].ctx
    deadline = asyncio.get_running_loop().time() + 5
    while context._go_async is None:  # made by the checkpoint that waits
        assert asyncio.get_running_loop().time() < deadline, "the checkpoint did not hold"
        await asyncio.sleep(0.005)
    assert not reached.is_set()
    await engine.resume(job.id)
    await asyncio.wait_for(reached.wait(), 5)
    cancelled = await engine.cancel(job.id)
    assert orjson.loads(cancelled.error)["code"] == "cancelled"
    await asyncio.wait_for(engine.pool.settled(), 5)
    reached.clear()
    swallowing = await engine.submit("steps", "swallow")
    await asyncio.wait_for(reached.wait(), 5)
    await engine.cancel(swallowing.id)
    await asyncio.wait_for(engine.pool.settled(), 5)
    assert ended == [swallowing.id]
    stored = await engine.get(swallowing.id)
    assert (stored.state, orjson.loads(stored.error)["code"]) == (JobState.FAILURE,
                                                                   "cancelled")


async def test_the_refill_claim_shares_the_commit_of_the_end_that_freed_its_worker(
        make_engine, registry):
    """One worker, queued jobs that end at once: each end and the claim of the next job go
    in one commit, so a job costs one commit, not two (an end queued before the worker
    gave its slot back would be taken alone, and the claim would wait for its own)."""

    @registry.process("noop")
    async def noop(ctx, data):
        return data

    engine = await make_engine(workers=1)
    store = engine.store
    before = store.commits
    jobs = await engine.submit_bulk("noop", list(range(20)))
    for job in jobs:
        assert (await engine.wait(job.id, 5)).state is JobState.SUCCESS
    # the insert, the first claim, then one commit for each end with the next claim
    assert store.commits - before <= 1 + 1 + 20 + 1


async def test_a_result_that_is_not_json_fails_the_job(make_engine, registry):
    @registry.process("weird")
    async def weird(ctx, data):
        return {1, 2}

    engine = await make_engine()
    job = await engine.wait((await engine.submit("weird", None)).id, 5)
    assert job.state is JobState.FAILURE
    assert "JSON" in orjson.loads(job.error)["message"]


async def test_thread_handlers_run_off_the_loop_and_report_progress(make_engine, registry):
    gate = threading.Event()
    loop_thread = threading.get_ident()

    @registry.process("threaded")
    def threaded(ctx, data):
        ctx.progress(50, "half")
        assert gate.wait(10)
        return threading.get_ident() != loop_thread

    engine = await make_engine()
    job = await engine.submit("threaded", None)
    deadline = asyncio.get_running_loop().time() + 5
    while (await engine.get(job.id)).progress is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert orjson.loads((await engine.get(job.id)).progress) == {"percent": 50, "message": "half"}
    gate.set()
    assert orjson.loads((await engine.wait(job.id, 5)).result) is True


async def test_drain_refuses_new_jobs_and_requeues_running_ones_with_the_attempt_back(
    make_engine, registry, tmp_path
):
    started = asyncio.Event()

    @registry.process("endless")
    async def endless(ctx, data):
        started.set()
        await asyncio.Event().wait()

    engine = await make_engine()
    job = await engine.submit("endless", None)
    await asyncio.wait_for(started.wait(), 5)
    await engine.drain(0.05)
    with pytest.raises(Unavailable):
        await engine.submit("endless", None)
    stored = await engine.get(job.id)
    assert (stored.state, stored.attempts) == (JobState.QUEUED, 0)


async def test_a_job_left_running_by_a_dead_server_runs_again_after_restart(
    make_engine, registry, tmp_path
):
    path = str(tmp_path / "restart.db")
    store = SQLiteStore(path)
    await store.open()
    orphan = make_job(process="again", state=JobState.RUNNING, attempts=1, max_attempts=2)
    await store.insert([orphan])
    await store.close()

    @registry.process("again", max_attempts=2)
    async def again(ctx, data):
        return ctx.attempt

    engine = await make_engine(path=path)
    job = await engine.wait(orphan.id, 5)
    assert (job.state, orjson.loads(job.result)) == (JobState.SUCCESS, 2)


async def test_idempotency_keys_are_scoped_to_the_owner(make_engine):
    from aioqueue.processes import BUILTINS

    engine = await make_engine(workers=1)
    engine.registry.update(BUILTINS)
    a1 = await engine.submit("echo", 1, delay_s=60, owner="alice", idempotency_key="k")
    a2 = await engine.submit("echo", 1, delay_s=60, owner="alice", idempotency_key="k")
    b1 = await engine.submit("echo", 1, delay_s=60, owner="bob", idempotency_key="k")
    anon = await engine.submit("echo", 1, delay_s=60, idempotency_key="k")
    anon2 = await engine.submit("echo", 1, delay_s=60, idempotency_key="k")
    assert a1.id == a2.id
    assert len({a1.id, b1.id, anon.id}) == 3
    assert anon2.id == anon.id
    stored = await engine.store.get(a1.id)
    assert stored.idempotency_key == "k" and stored.request_hash == a1.request_hash
