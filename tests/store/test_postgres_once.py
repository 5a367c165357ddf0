"""Once across servers sharing one PostgreSQL schema: the outbox hands each notice to one
server (claimed with SKIP LOCKED), and retention runs on one server at a time (an
advisory lock; the others do nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from aioqueue.models import JobState, now_ms
from aioqueue.store.postgres import PostgresStore
from aioqueue.store.postgres.migrate import try_xact_lock
from tests.factories import make_job

T = TypeVar("T")


@pytest.fixture
async def pair(pg_url):
    """Two servers' stores on one schema."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def _ended(store: PostgresStore, count: int, **fields) -> list[str]:
    """``count`` jobs ended by ``store`` (their ending statement writes their notices)."""
    jobs = [make_job(state=JobState.RUNNING, attempts=1, **fields) for _ in range(count)]
    await store.insert(jobs)
    for at, job in enumerate(jobs, 1):
        assert await store.finish(job, JobState.SUCCESS, result=b"1", error=None,
                                  ended_at_ms=at)
    return [job.id for job in jobs]


async def _while_held(holder: PostgresStore, name: str, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` while ``holder`` (another server) holds the advisory lock ``name``, as
    it does in the middle of its own purge or prune."""
    locked, done = asyncio.Event(), asyncio.Event()

    async def hold(conn) -> None:
        async with conn.transaction():
            assert await try_xact_lock(conn, name)
            locked.set()
            await done.wait()

    holding = asyncio.ensure_future(holder._run(hold))
    await locked.wait()
    try:
        return await body()
    finally:
        done.set()
        await holding


async def test_the_outbox_hands_each_notice_to_one_server(pair):
    a, b = pair
    await _ended(a, 40, callback_url="http://127.0.0.1/h")
    every = {row[0] for row in await a._fetch("SELECT seq FROM outbox")}
    assert len(every) == 40
    now = now_ms()
    got: dict[int, list[str]] = {}
    for _ in range(20):  # rounds: four claims at once, two per server
        rounds = await asyncio.gather(a.due_notices(now, 7), b.due_notices(now, 7),
                                      a.due_notices(now, 7), b.due_notices(now, 7))
        if not any(rounds):
            break
        for server, notices in zip("abab", rounds):
            for notice in notices:
                got.setdefault(notice.seq, []).append(server)
        for store, notices in zip((a, b, a, b), rounds):
            for notice in notices:
                await store.notice_delivered(notice.seq)
    twice = {seq: servers for seq, servers in got.items() if len(servers) > 1}
    assert twice == {}
    assert set(got) == every
    assert await a.next_notice_due_ms() is None
    assert await a._value("SELECT count(*) FROM outbox") == 0


async def test_a_claimed_notice_is_not_due_to_the_other_server(pair):
    a, b = pair
    await _ended(a, 3, callback_url="http://127.0.0.1/h")
    held = await a.due_notices(now_ms(), 10)
    assert len(held) == 3
    assert await b.due_notices(now_ms(), 10) == []  # a has them, undelivered


async def test_purge_runs_on_one_server_at_a_time(pair):
    a, b = pair
    await _ended(a, 12)
    # while b purges (holds the lock), a purges nothing at all
    assert await _while_held(b, "purge", lambda: a.purge(now_ms(), 100)) == 0
    assert await a._value("SELECT count(*) FROM jobs") == 12
    # at once on both: no error, and together they remove each eligible job once
    done = await asyncio.gather(a.purge(now_ms(), 100), b.purge(now_ms(), 100))
    assert sum(done) == 12 and 0 in done
    assert await a._value("SELECT count(*) FROM jobs") == 0


async def test_prune_changes_runs_on_one_server_at_a_time(pair):
    a, b = pair
    await _ended(a, 3)
    marks = "SELECT count(*) FROM change_marks"
    before = await a._value(marks)
    # while b prunes (holds the lock), a's prune does nothing: not even its mark
    assert await _while_held(b, "changes", lambda: a.prune_changes(now_ms(), now_ms())) == 0
    assert await a._value(marks) == before
    await a.prune_changes(now_ms(), now_ms())
    assert await a._value(marks) == before + 1
    # the locks are per name: b holding the purge lock does not stop a's prune
    await asyncio.sleep(0.002)
    await _while_held(b, "purge", lambda: a.prune_changes(now_ms(), now_ms()))
    assert await a._value(marks) == before + 2
