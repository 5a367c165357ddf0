"""PostgreSQL's own guarantees: migrations under an advisory lock, pinned claim plans, and
the group commit.

The behaviour every backend shares is the contract suite's; these are what only the
PostgreSQL store promises, tested on a real server (see ``tests/postgres.py``).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from aioqueue.errors import Unavailable
from aioqueue.models import JobState, now_ms
from aioqueue.store.postgres import SCHEMA_VERSION, PostgresStore
from aioqueue.store.postgres.schema import (
    CLAIM_CAPPED_SQL, CLAIM_PROCESS_SQL, CLAIM_SQL, ORDERED_SETTINGS, PURGE_SQL,
)
from tests.factories import make_job


@pytest.fixture
async def store(pg_url):
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


async def test_servers_starting_at_once_migrate_one_schema_once(pg_url):
    stores = [PostgresStore(pg_url, pool_size=2) for _ in range(4)]
    try:
        # without the advisory lock, the losers fail on "relation jobs already exists"
        await asyncio.gather(*(store.open() for store in stores))
        conn = await asyncpg.connect(pg_url)
        try:
            assert await conn.fetchval("SELECT version FROM schema_version") == SCHEMA_VERSION
            assert await conn.fetchval("SELECT count(*) FROM schema_version") == 1
        finally:
            await conn.close()
        job = make_job()
        await stores[0].insert([job])
        assert await stores[3].get(job.id) == job
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_schema_newer_than_the_code_refuses_to_open(pg_url):
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    with pytest.raises(Unavailable, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await PostgresStore(pg_url).open()


async def _plan(store: PostgresStore, sql: str, *args) -> str:
    """The plan of ``sql`` as the claim-and-purge connections make it (nothing runs)."""

    async def explain(conn: asyncpg.Connection) -> str:
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))

    return await store._run(explain, ordered=True)


def _scans(plan: str) -> list[str]:
    return [line.split(" on jobs")[0].split("using ")[-1].strip()
            for line in plan.splitlines() if " on jobs" in line and "Scan" in line]


@pytest.mark.parametrize("statistics", ["fresh", "analyzed while the queue was empty"])
async def test_each_claim_is_served_by_its_one_index_and_never_sorts_the_backlog(store,
                                                                                 statistics):
    # the trap: statistics that say nothing is queued, then a burst
    await store.insert([make_job(process=f"p{n % 4}", state=JobState.SUCCESS,
                                 ended_at_ms=now_ms()) for n in range(4000)])
    if statistics != "fresh":
        await store._run(lambda conn: conn.execute("ANALYZE jobs"))
    await store.insert([make_job(process=f"p{n % 4}", priority=n % 5) for n in range(4000)])
    now = now_ms()

    claim = await _plan(store, CLAIM_SQL, now, 10, "node", 30_000)
    assert _scans(claim) == ["jobs_claim", "jobs_pkey"], claim
    assert "Sort" not in claim, claim
    one = await _plan(store, CLAIM_PROCESS_SQL, now, 10, "p1", "node", 30_000)
    assert _scans(one) == ["jobs_claim_process", "jobs_pkey"], one
    assert "Sort" not in one, one
    capped = await _plan(store, CLAIM_CAPPED_SQL, now, ["p0", "p2"], [3, 4], 5, "node",
                         30_000)
    assert _scans(capped) == ["jobs_claim_process", "jobs_pkey"], capped
    # only the few rows the caps let through are sorted, never the backlog
    assert capped.count("Sort Key") == 1 and "Sort Key: p.priority" in capped, capped
    purge = await _plan(store, PURGE_SQL, now, 100)
    assert "jobs_ended" in _scans(purge) and "Sort" not in purge, purge


async def test_the_claim_connections_plan_without_sorts_and_without_jit(store):
    settings = await store._run(
        lambda conn: conn.fetchrow("SELECT current_setting('enable_sort') AS sort, "
                                   "current_setting('jit') AS jit"), ordered=True)
    assert (settings["sort"], settings["jit"]) == (ORDERED_SETTINGS["enable_sort"], "off")
    # the other connections plan as PostgreSQL does by default
    assert await store._value("SELECT current_setting('enable_sort')") == "on"


async def test_ends_of_one_moment_share_one_commit(store):
    jobs = [make_job(state=JobState.RUNNING, attempts=1, started_at_ms=now_ms())
            for _ in range(200)]
    await store.insert(jobs)
    before = store.commits
    ended = await asyncio.gather(*(
        store.finish(job, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=now_ms())
        for job in jobs))
    assert all(ended)
    # the first end commits alone; the rest wait for it and go together
    assert store.commits - before <= 3
    assert (await store.count_by_state())["running"] == 0


async def test_a_failed_round_answers_unavailable_and_the_store_goes_on(store, pg_url):
    job = make_job()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
        with pytest.raises(Unavailable) as refused:
            await store.insert([job])
        assert "jobs" not in refused.value.message  # PostgreSQL's text stays in the log
        await conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
    finally:
        await conn.close()
    await store.insert([job])
    assert await store.get(job.id) == job


async def test_a_driver_state_error_answers_unavailable(store, monkeypatch):
    """asyncpg's own client-side failures (a connection in the wrong state) are not a
    PostgresError or InterfaceError; a read must still answer Unavailable, not crash."""
    job = make_job()
    await store.insert([job])

    async def broken(self, *args, **kwargs):
        raise asyncpg.InternalClientError("cannot switch to state 15; another operation is "
                                          "in progress")

    monkeypatch.setattr(asyncpg.Connection, "fetch", broken)
    with pytest.raises(Unavailable):
        await store.get(job.id)
    monkeypatch.undo()
    assert await store.get(job.id) == job


async def test_synchronous_full_and_normal_map_to_synchronous_commit(pg_url):
    for synchronous, expected in (("FULL", "on"), ("NORMAL", "off")):
        store = PostgresStore(pg_url, synchronous=synchronous)
        await store.open()
        try:
            assert await store._value("SHOW synchronous_commit") == expected
        finally:
            await store.close()
