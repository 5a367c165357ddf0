"""The store on a real SQLite file: schema, group commit, claim order, guards, recovery."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from aioqueue.errors import Unavailable
from aioqueue.models import ErrorCode, Job, JobState, now_ms
from tests.factories import make_job
from aioqueue.store import CLAIM_SQL, NEXT_DUE_SQL, PURGE_SQL, SCHEMA_VERSION, Store


@pytest.fixture
async def store(tmp_path):
    store = Store(str(tmp_path / "store.db"))
    await store.open()
    yield store
    await store.close()


def committed_rows(path: str) -> dict[str, str]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT id, state FROM jobs"))


async def test_fresh_database_is_migrated_to_the_current_schema_in_wal_mode(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_keeps_the_data_and_does_not_migrate_again(tmp_path):
    path = str(tmp_path / "again.db")
    first = Store(path)
    await first.open()
    job = make_job()
    await first.insert([job])
    await first.close()
    second = Store(path)
    await second.open()
    assert (await second.get(job.id)) == job
    await second.close()


async def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = str(tmp_path / "newer.db")
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store = Store(path)
    with pytest.raises(Unavailable, match="newer"):
        await store.open()


async def test_state_column_refuses_unknown_states(store):
    with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO jobs (id, process, state, input, max_attempts, created_at_ms, "
            "scheduled_at_ms) VALUES ('x', 'p', 'lost', x'', 1, 0, 0)"
        )


async def test_concurrent_inserts_are_grouped_and_each_is_committed_when_answered(store):
    jobs = [make_job() for _ in range(200)]
    seen_at_answer: list[bool] = []

    async def submit(job: Job) -> None:
        await store.insert([job])
        seen_at_answer.append(job.id in committed_rows(store.path))

    before = store.commits
    await asyncio.gather(*(submit(job) for job in jobs))
    assert all(seen_at_answer) and len(seen_at_answer) == 200
    assert store.commits - before < 20  # 200 inserts, a handful of transactions


async def test_claim_takes_highest_priority_first_then_the_earliest(store):
    now = now_ms()
    low_old = make_job(priority=0, scheduled_at_ms=now - 3000)
    high_new = make_job(priority=5, scheduled_at_ms=now - 1000)
    high_old = make_job(priority=5, scheduled_at_ms=now - 2000)
    future = make_job(priority=9, scheduled_at_ms=now + 60_000)
    await store.insert([low_old, high_new, high_old, future])
    claimed = await store.claim(2, now)
    assert [j.id for j in claimed] == [high_old.id, high_new.id]
    assert all(j.state is JobState.RUNNING and j.attempts == 1 for j in claimed)
    assert [j.id for j in await store.claim(10, now)] == [low_old.id]
    assert await store.claim(10, now) == []
    assert await store.next_due_ms() == future.scheduled_at_ms


@pytest.mark.parametrize(("sql", "params", "index"), [
    (CLAIM_SQL, (0, 0, 5), "jobs_claim"), (NEXT_DUE_SQL, (), "jobs_due"),
    (PURGE_SQL, (0, 5), "jobs_ended"),
])
async def test_dispatcher_queries_walk_their_index_without_sorting(store, sql, params, index):
    with sqlite3.connect(store.path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan


async def test_finish_ends_an_active_job_once_and_never_changes_a_terminal_one(store):
    job = make_job()
    await store.insert([job])
    assert await store.finish(job.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert not await store.finish(job.id, JobState.FAILURE, result=None, error=b"{}",
                                  ended_at_ms=2)
    stored = await store.get(job.id)
    assert (stored.state, stored.result, stored.ended_at_ms) == (JobState.SUCCESS, b"1", 1)


async def test_progress_is_coalesced_to_the_latest_value(store):
    job = make_job(state=JobState.RUNNING, attempts=1)
    await store.insert([job])
    for n in range(10):
        store.set_progress(job.id, f'{{"percent": {n}}}'.encode())
    await store.insert([make_job()])  # a write to wait on: progress rides in the same commit
    assert (await store.get(job.id)).progress == b'{"percent": 9}'


async def test_recovery_requeues_jobs_with_attempts_left_and_interrupts_the_rest(store):
    left = make_job(state=JobState.RUNNING, attempts=1, max_attempts=3)
    spent = make_job(state=JobState.RUNNING, attempts=3, max_attempts=3)
    done = make_job(state=JobState.SUCCESS, result=b"1", ended_at_ms=1)
    await store.insert([left, spent, done])
    assert await store.recover(now_ms()) == (1, 1)
    assert (await store.get(left.id)).state is JobState.QUEUED
    assert (await store.get(left.id)).attempts == 1
    ended = await store.get(spent.id)
    assert ended.state is JobState.FAILURE
    assert ErrorCode.INTERRUPTED.value.encode() in ended.error
    assert (await store.get(done.id)) == done


async def test_requeue_can_give_the_attempt_back(store):
    job = make_job(state=JobState.RUNNING, attempts=2)
    await store.insert([job])
    assert await store.requeue(job.id, scheduled_at_ms=5, give_back_attempt=True)
    stored = await store.get(job.id)
    assert (stored.state, stored.attempts, stored.scheduled_at_ms) == (JobState.QUEUED, 1, 5)
    assert not await store.requeue(job.id, scheduled_at_ms=5)  # only a running job


async def test_owner_filter_hides_other_clients_jobs(store):
    job = make_job(owner="alice")
    await store.insert([job])
    assert await store.get(job.id, owner="alice") == job
    assert await store.get(job.id, owner="bob") is None
    assert await store.get(job.id) == job


async def test_writes_after_close_are_refused(tmp_path):
    store = Store(str(tmp_path / "closed.db"))
    await store.open()
    await store.close()
    with pytest.raises(Unavailable):
        store.insert([make_job()])


async def test_ends_committed_together_still_report_each_guard(store):
    active, ended = make_job(state=JobState.RUNNING), make_job(state=JobState.RUNNING)
    await store.insert([active, ended])
    assert await store.finish(ended.id, JobState.SUCCESS, result=b"0", error=None, ended_at_ms=1)
    outcomes = await asyncio.gather(
        store.finish(active.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=2),
        store.finish(ended.id, JobState.FAILURE, result=None, error=b"{}", ended_at_ms=3),
    )
    assert outcomes == [True, False]
    assert (await store.get(ended.id)).result == b"0"
    assert (await store.get(active.id)).result == b"1"


async def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_jobs(tmp_path):
    from aioqueue.store import MIGRATIONS

    path = str(tmp_path / "v1.db")
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            "INSERT INTO jobs (id, process, state, input, max_attempts, created_at_ms, "
            "scheduled_at_ms) VALUES (?, 'echo', 'queued', x'7b7d', 1, 5, 5)", ("a" * 32,))
    store = Store(path)
    await store.open()
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"outbox", "jobs_idempotency", "jobs_owner"} <= tables
        job = await store.get("a" * 32)
        assert (job.state, job.input, job.scheduled_at_ms) == (JobState.QUEUED, b"{}", 5)
    finally:
        await store.close()
