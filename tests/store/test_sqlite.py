"""What is SQLite's own: WAL, migrations, the CHECK on states, group commit, query plans.

The behaviour every backend shares is in ``test_contract_*``.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3

import pytest

from aioqueue.errors import Unavailable
from aioqueue.config import RetentionSettings
from aioqueue.engine.retention import Retention
from aioqueue.models import Job, JobState, now_ms
from aioqueue.store.sqlite import (
    CLAIM_SQL, NEXT_DUE_SQL, PURGE_SQL, SCHEMA_VERSION, SQLiteStore, list_query,
)
from aioqueue.store.sqlite.schema import COLUMNS, _job_to_row
from aioqueue.store.sqlite.transitions import WAITING_PARENTS_SQL
from tests.factories import make_job
from tests.helpers.database import sqlite_at_version


@pytest.fixture
async def store(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"))
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


async def test_a_database_from_a_newer_version_is_refused(tmp_path):
    path = str(tmp_path / "newer.db")
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store = SQLiteStore(path)
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


@pytest.mark.parametrize(("sql", "params", "index"), [
    (CLAIM_SQL, (0, 0, 5), "jobs_claim"), (NEXT_DUE_SQL, (), "jobs_due"),
    (PURGE_SQL, (0, 5), "jobs_ended"),
])
async def test_dispatcher_queries_walk_their_index_without_sorting(store, sql, params, index):
    with sqlite3.connect(store.path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert f"USING INDEX {index}" in plan
    assert "TEMP B-TREE" not in plan


async def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_jobs(tmp_path):
    path = str(tmp_path / "v1.db")
    sqlite_at_version(path, 1, job_id="a" * 32)
    store = SQLiteStore(path)
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


async def test_reopening_keeps_pending_notices_and_does_not_migrate_again(tmp_path):
    path = str(tmp_path / "again.db")
    first = SQLiteStore(path)
    await first.open()
    job = make_job(state=JobState.RUNNING, attempts=1, callback_url="http://127.0.0.1/hook")
    await first.insert([job])
    await first.finish(job, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    try:
        assert [n.job_id for n in await second.due_notices(now_ms(), 10)] == [job.id]
        assert (await second._read("PRAGMA user_version", ()))[0][0] == SCHEMA_VERSION
        assert second.commits == 0  # nothing to migrate
    finally:
        await second.close()


async def test_an_end_and_its_notices_are_one_commit(store):
    job = make_job(state=JobState.RUNNING, attempts=1, callback_url="http://127.0.0.1/hook",
                   notify_email="ana@example.com")
    await store.insert([job])
    commits = store.commits
    assert await store.finish(job, JobState.SUCCESS, result=b"1", error=None,
                              ended_at_ms=now_ms())
    assert store.commits == commits + 1
    assert len(await store.due_notices(now_ms(), 10)) == 2


async def test_progress_reports_ride_in_one_commit(store):
    job = make_job(state=JobState.RUNNING, attempts=1)
    await store.insert([job])
    commits = store.commits
    await asyncio.gather(*(store.set_progress(job, f'{{"percent": {n}}}'.encode())
                           for n in range(10)))
    assert store.commits == commits + 1


def _job(state=JobState.QUEUED, *, ended_at_ms=None, process="echo", owner=None) -> Job:
    return make_job(state=state, ended_at_ms=ended_at_ms, process=process, owner=owner,
                    max_attempts=1)


@pytest.mark.parametrize(
    ("process", "state", "owner", "before"),
    list(itertools.product((None, "echo"), (None, JobState.QUEUED), (None, "alice"), (None, 500))),
)
async def test_the_page_query_walks_an_index_in_order_without_a_sort(store, process, state, owner,
                                                                       before):
    # enough rows, spread over values, for the planner to have real statistics
    await store.insert([_job(process=p, owner=o) for p, o in
                        itertools.product(("echo", "sleep", "sha256"), ("alice", "bob", None))
                        for _ in range(40)])
    await store._enqueue("ANALYZE", ())
    sql, params = list_query(process=process, state=state, owner=owner, before=before, limit=50)
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
    await store.insert([_job(JobState.SUCCESS, ended_at_ms=old) for _ in range(7)])
    recent = _job(JobState.FAILURE, ended_at_ms=now_ms())
    active = _job(JobState.QUEUED)
    await store.insert([recent, active])
    commits = store.commits
    purged = await Retention(store, RetentionSettings(terminal_s=5, batch_size=3)).purge()
    assert purged == 7
    assert store.commits - commits == 3  # 3 + 3 + 1, each its own transaction
    assert [j.id for _, j in await store.list_jobs()] == [active.id, recent.id]


async def test_listing_a_schedules_jobs_walks_its_index_without_a_sort(store):
    pairs = [p for p in itertools.product(("nightly", "hourly", None), ("alice", None, "bob"))
             for _ in range(40)]
    await store.insert([make_job(owner=o, schedule=s, fire_at_ms=n, max_attempts=1)
                        for n, (s, o) in enumerate(pairs)])
    await store._enqueue("ANALYZE", ())
    for owner in (None, "alice"):
        sql, params = list_query(process=None, state=None, owner=owner, before=None, limit=50,
                                 schedule="nightly")
        plan = " | ".join(row[3] for row in await store._read(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "TEMP B-TREE" not in plan, plan
        assert plan.startswith("SEARCH jobs USING INDEX jobs_"), plan
    sql, params = list_query(process=None, state=None, owner=None, before=None, limit=50,
                             schedule="nightly")
    plan = " | ".join(row[3] for row in await store._read(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "jobs_schedule " in plan + " ", plan


async def test_listing_a_jobs_children_walks_the_deps_key_without_a_sort(store):
    parents = [make_job(max_attempts=1) for _ in range(5)]
    await store.insert(parents)
    await store.insert([make_job(depends_on=(p.id,), owner=o, max_attempts=1)
                        for p in parents for o in ("alice", "bob") for _ in range(20)])
    await store._enqueue("ANALYZE", ())
    for owner, before in ((None, None), ("alice", 500)):
        sql, params = list_query(process=None, state=None, owner=owner, before=before, limit=50,
                                 depends_on=parents[0].id)
        plan = " | ".join(row[3] for row in await store._read(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "TEMP B-TREE" not in plan, plan
        assert plan.startswith("SEARCH deps USING PRIMARY KEY"), plan
        assert "SCAN" not in plan, plan


async def test_the_parents_children_wait_for_are_read_from_deps_not_from_the_backlog(store):
    parent = make_job(max_attempts=1)
    await store.insert([parent, *[make_job(max_attempts=1) for _ in range(300)]])
    await store.insert([make_job(depends_on=(parent.id,), max_attempts=1)])
    # no ANALYZE: a server's file has no statistics, and without them SQLite picks jobs_state
    plan = " | ".join(row[3] for row in await store._read(
        f"EXPLAIN QUERY PLAN {WAITING_PARENTS_SQL}", ()))
    assert plan.startswith("SCAN deps"), plan  # one row per edge, not every queued job
    assert "jobs_state" not in plan, plan
    assert await store.waiting_parents() == [parent.id]


async def test_waiting_children_are_not_in_the_claims_indexes(store):
    parent = make_job(max_attempts=1)
    await store.insert([parent] + [make_job(depends_on=(parent.id,)) for _ in range(50)])
    with sqlite3.connect(store.path) as conn:
        for index in ("jobs_claim", "jobs_due", "jobs_claim_process", "jobs_due_process"):
            count = conn.execute(f"SELECT count(*) FROM jobs INDEXED BY {index} "
                                 "WHERE state = 'queued' AND waiting = 0").fetchone()[0]
            assert count == 1, index


async def test_a_database_of_schema_5_is_migrated_and_its_dependencies_still_release(tmp_path):
    path = str(tmp_path / "v5.db")
    parent = make_job(state=JobState.RUNNING, attempts=1, max_attempts=1)
    child = make_job(process="c", depends_on=(parent.id,))
    sqlite_at_version(path, 5)
    with sqlite3.connect(path) as conn:
        # through the version-5 insert trigger: the child counts its parent
        conn.executemany(f"INSERT INTO jobs ({COLUMNS}) VALUES ({', '.join('?' * 22)})",
                         [_job_to_row(parent), _job_to_row(child)])
    store = SQLiteStore(path)
    await store.open()
    try:
        with sqlite3.connect(path) as conn:
            indexes = dict(conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"))
        assert "jobs_running" not in indexes
        assert "WHERE owner IS NOT NULL" in indexes["jobs_owner"]
        assert await store.claim_process("c", 10, now_ms()) == []
        assert await store.finish(parent, JobState.SUCCESS, result=b"1", error=None,
                                  ended_at_ms=now_ms())
        [claimed] = await store.claim_process("c", 10, now_ms())  # released by the trigger
        assert claimed.id == child.id
    finally:
        await store.close()


async def test_the_end_of_a_job_nobody_waits_for_runs_no_statement_of_the_childrens_trigger(
        store):
    lone = make_job(state=JobState.RUNNING, attempts=1)
    await store.insert([lone])
    with sqlite3.connect(store.path) as conn:
        triggers = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs' "
            "AND sql LIKE '%AFTER UPDATE OF%state%'").fetchone()[0]
    traced: list[str] = []
    await store._writer.set_trace_callback(traced.append)
    try:
        assert await store.finish(lone, JobState.SUCCESS, result=b"1", error=None,
                                  ended_at_ms=now_ms())
    finally:
        await store._writer.set_trace_callback(None)
    # SQLite traces the statement once, then again for each trigger program it enters and
    # each statement a trigger runs: each trigger is entered, and none runs a statement but
    # the change log's one insert (jobs_changes_update)
    ends = [line for line in traced if line.startswith("UPDATE")]
    assert len(ends) <= 1 + triggers + 1, traced
