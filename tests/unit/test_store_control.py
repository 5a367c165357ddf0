"""The store's job-control SQL on a real SQLite file: query plans, purge batches, key scope."""

from __future__ import annotations

import itertools

import pytest

from aioqueue.config import EngineSettings, RetentionSettings
from aioqueue.engine import Engine
from aioqueue.engine.retention import Retention
from aioqueue.models import Job, JobState, new_job_id, now_ms
from aioqueue.processes import BUILTINS
from aioqueue.store import Store, list_query


@pytest.fixture
async def store(tmp_path):
    store = Store(str(tmp_path / "unit.db"))
    await store.open()
    yield store
    await store.close()


def job(state=JobState.QUEUED, *, ended_at_ms=None, process="echo", owner=None, key=None):
    now = now_ms()
    return Job(
        id=new_job_id(), process=process, state=state, input=b"null", result=None,
        error=None, progress=None, attempts=0, max_attempts=1, priority=0,
        created_at_ms=now, scheduled_at_ms=now, started_at_ms=None, ended_at_ms=ended_at_ms,
        owner=owner, idempotency_key=key,
    )


@pytest.mark.parametrize(
    ("process", "state", "owner", "before"),
    list(itertools.product((None, "echo"), (None, JobState.QUEUED), (None, "alice"), (None, 500))),
)
async def test_the_page_query_walks_an_index_in_order_without_a_sort(store, process, state, owner,
                                                                       before):
    # enough rows, spread over values, for the planner to have real statistics
    await store.insert([job(process=p, owner=o) for p, o in
                        itertools.product(("echo", "sleep", "sha256"), ("alice", "bob", None))
                        for _ in range(40)])
    await store._enqueue("ANALYZE", ())
    sql, params = list_query(process=process, state=state, owner=owner, before_seq=before,
                             limit=50)
    plan = " | ".join(row[3] for row in await store._read(f"EXPLAIN QUERY PLAN {sql}", params))
    # no sort step: the rows come out of the index (or the table's key) newest first
    assert "TEMP B-TREE" not in plan, plan
    if any(v is not None for v in (process, state, owner)):
        # a seek on one of the (column, seq) indexes, not a walk over every row
        assert plan.startswith("SEARCH jobs USING INDEX jobs_"), plan
    else:
        assert plan in ("SCAN jobs", "SEARCH jobs USING INTEGER PRIMARY KEY (rowid<?)"), plan


async def test_purge_deletes_old_terminal_jobs_in_small_transactions(store):
    old = now_ms() - 10_000
    await store.insert([job(JobState.SUCCESS, ended_at_ms=old) for _ in range(7)])
    recent = job(JobState.FAILURE, ended_at_ms=now_ms())
    active = job(JobState.QUEUED)
    await store.insert([recent, active])
    commits = store.commits
    purged = await Retention(store, RetentionSettings(terminal_s=5, batch_size=3)).purge()
    assert purged == 7
    assert store.commits - commits == 3  # 3 + 3 + 1, each its own transaction
    assert await store.get(recent.id) is not None
    assert await store.get(active.id) is not None
    assert [j.id for _, j in await store.list_jobs()] == [active.id, recent.id]


async def test_idempotency_keys_are_scoped_to_the_owner(store):
    registry = type(BUILTINS)()
    registry.update(BUILTINS)
    engine = Engine(store, registry, EngineSettings(workers=1))
    await engine.start()
    try:
        a1 = await engine.submit("echo", 1, delay_s=60, owner="alice", idempotency_key="k")
        a2 = await engine.submit("echo", 1, delay_s=60, owner="alice", idempotency_key="k")
        b1 = await engine.submit("echo", 1, delay_s=60, owner="bob", idempotency_key="k")
        anon = await engine.submit("echo", 1, delay_s=60, idempotency_key="k")
        anon2 = await engine.submit("echo", 1, delay_s=60, idempotency_key="k")
    finally:
        await engine.drain(0)
    assert a1.id == a2.id
    assert len({a1.id, b1.id, anon.id}) == 3
    assert anon2.id == anon.id
    stored = await store.get(a1.id)
    assert stored.idempotency_key == "k" and stored.request_hash == a1.request_hash


async def test_resume_of_a_job_whose_last_run_was_lost_never_passes_max_attempts(store):
    lost = job(JobState.PAUSED).evolve(attempts=1, max_attempts=1)
    await store.insert([lost])
    resumed = await store.resume(lost.id, running=False)
    assert resumed.state is JobState.QUEUED and resumed.attempts == 0
    claimed = await store.claim(1, now_ms(), {"echo": 1})
    assert [j.attempts for j in claimed] == [1]
