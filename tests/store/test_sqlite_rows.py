"""SQLite's group commit writes many rows a statement (new jobs, ends, progress): few
statements a commit, and each caller still answered on its own (a taken idempotency key
fails only its insert; an end of a job ended already answers False)."""

from __future__ import annotations

import asyncio
import sqlite3

from aioqueue.errors import DuplicateJob
from aioqueue.models import JobState, now_ms
from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job
from tests.store.test_sqlite import store  # noqa: F401 (the fixture: one SQLite store)


async def _one_commit(store: SQLiteStore, writes: list, start: str = "INSERT INTO jobs"
                      ) -> tuple[list, list[str]]:
    """Queue every write (a list of jobs to insert, or an awaitable) before the writer runs,
    so they share one commit; the outcomes, and the statements sent that begin ``start``."""
    statements: list[str] = []
    await store._writer.set_trace_callback(statements.append)
    commits = store.commits
    try:
        futures = [store.insert_soon(w) if isinstance(w, list) else asyncio.ensure_future(w)
                   for w in writes]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await store._writer.set_trace_callback(None)
    assert store.commits - commits == 1
    # SQLite's trace repeats a statement's text for each trigger program it runs
    sent = [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]
    return outcomes, [s for s in sent if s.startswith(start)]


async def test_a_taken_key_in_the_middle_of_a_commit_fails_only_its_insert(store):
    taken = make_job(owner="alice", idempotency_key="taken")
    await store.insert([taken])
    jobs = [make_job(owner="alice", idempotency_key=f"k{n}") for n in range(40)]
    jobs[20] = make_job(owner="alice", idempotency_key="taken")  # committed before
    jobs[30] = make_job(owner="alice", idempotency_key="k5")  # taken earlier in this commit
    outcomes, inserts = await _one_commit(store, [[job] for job in jobs])
    refused = {n for n, outcome in enumerate(outcomes) if isinstance(outcome, DuplicateJob)}
    assert refused == {20, 30}
    assert all(outcomes[n] is None for n in range(40) if n not in refused)
    for n, job in enumerate(jobs):
        assert (await store.get(job.id) == job) is (n not in refused)
    assert len(inserts) == 2  # 32 rows, then 8: not one statement per row


async def test_more_rows_than_one_statement_holds_are_all_stored(store):
    jobs = [make_job() for _ in range(150)]
    outcomes, inserts = await _one_commit(store, [jobs[:1], jobs[1:149], jobs[149:]])
    assert outcomes == [None, None, None]
    assert len(inserts) == 4  # 64 + 64 + 16 + 6
    with sqlite3.connect(store.path) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM jobs")}
    assert stored == {job.id for job in jobs}


async def test_a_low_variable_limit_splits_the_rows_into_more_statements(store):
    writer = store._writer
    await writer._execute(writer._conn.setlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 22 * 20)
    jobs = [make_job() for _ in range(50)]
    outcomes, inserts = await _one_commit(store, [[job] for job in jobs])
    assert outcomes == [None] * 50
    assert len(inserts) == 4  # 16 + 16 + 16 + 2: each under 20 rows
    for job in jobs:
        assert await store.get(job.id) == job


async def test_the_ends_of_a_commit_are_one_statement_and_a_job_ended_already_answers_false(
        store):
    jobs = [make_job(state=JobState.RUNNING, attempts=1) for _ in range(20)]
    await store.insert(jobs)
    ended = now_ms()
    assert await store.finish(jobs[7], JobState.FAILURE, result=None, error=b'{"code": "x"}',
                              ended_at_ms=ended)
    ends = [store.finish(job, JobState.SUCCESS, result=str(n).encode(), error=None,
                         ended_at_ms=ended + 1) for n, job in enumerate(jobs)]
    outcomes, updates = await _one_commit(store, ends, "UPDATE jobs SET state")
    assert outcomes == [n != 7 for n in range(20)]
    assert len(updates) == 2  # 16 rows, then 4
    for n, job in enumerate(jobs):
        stored = await store.get(job.id)
        assert stored.result == (None if n == 7 else str(n).encode())
        assert stored.state is (JobState.FAILURE if n == 7 else JobState.SUCCESS)


async def test_the_progress_of_many_jobs_is_one_statement_and_the_latest_report_wins(store):
    jobs = [make_job(state=JobState.RUNNING, attempts=1) for _ in range(5)]
    await store.insert(jobs)
    reports = [store.set_progress(job, f'{{"percent": {n}}}'.encode())
               for n in range(3) for job in jobs]
    outcomes, updates = await _one_commit(store, reports, "UPDATE jobs SET progress")
    assert outcomes == [None] * 15 and len(updates) == 1
    for job in jobs:
        assert (await store.get(job.id)).progress == b'{"percent": 2}'
