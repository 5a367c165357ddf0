"""SQLite's group commit stores new jobs with multi-row INSERTs: few statements a commit,
and each caller still answered on its own (a taken idempotency key fails only its insert)."""

from __future__ import annotations

import asyncio
import sqlite3

from aioqueue.errors import DuplicateJob
from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job
from tests.store.test_sqlite import store  # noqa: F401 (the fixture: one SQLite store)


async def _one_commit(store: SQLiteStore, batches: list[list]) -> tuple[list, list[str]]:
    """Queue every batch before the writer runs (so they share one commit); the outcomes
    and the INSERT statements sent."""
    statements: list[str] = []
    await store._writer.set_trace_callback(statements.append)
    commits = store.commits
    try:
        futures = [store.insert_soon(jobs) for jobs in batches]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await store._writer.set_trace_callback(None)
    assert store.commits - commits == 1
    # SQLite's trace repeats a statement's text for each trigger program it runs
    sent = [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]
    return outcomes, [s for s in sent if s.startswith("INSERT INTO jobs")]


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
