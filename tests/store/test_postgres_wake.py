"""Servers on one PostgreSQL database wake each other: NOTIFY after commit, one LISTEN
connection per server, re-opened when it drops."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from aioqueue.errors import DuplicateJob
from aioqueue.models import JobState, now_ms
from aioqueue.store.base import StoreListener
from aioqueue.store.postgres import PostgresStore
from tests.factories import make_job


class Heard(StoreListener):
    """What a store's listener was told, with an event per kind to wait on."""

    def __init__(self) -> None:
        self.due: list[int] = []
        self.changed: list[str] = []
        self.news = asyncio.Event()

    def jobs_due(self, scheduled_at_ms: int) -> None:
        self.due.append(scheduled_at_ms)
        self.news.set()

    def job_changed(self, job_id: str) -> None:
        self.changed.append(job_id)
        self.news.set()

    async def until(self, check, timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():
                self.news.clear()
                await self.news.wait()


@pytest.fixture
async def pair(pg_url):
    """Two stores on one schema (two servers), each with a listener that records."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    heard_a, heard_b = Heard(), Heard()
    a.subscribe(heard_a)
    b.subscribe(heard_b)
    await a.open()
    await b.open()
    yield a, b, heard_a, heard_b
    await a.close()
    await b.close()


async def test_a_job_queued_on_one_server_wakes_the_other_with_its_due_time(pair):
    a, b, heard_a, heard_b = pair
    later = make_job(scheduled_at_ms=now_ms() + 60_000)
    await a.insert([later])
    await heard_b.until(lambda: later.scheduled_at_ms in heard_b.due)
    assert heard_a.due == []  # a server is not told what it did itself


async def test_ends_and_client_changes_on_one_server_reach_the_other(pair):
    a, b, heard_a, heard_b = pair
    running = make_job(state=JobState.RUNNING, attempts=1, started_at_ms=now_ms())
    queued = make_job()
    await a.insert([running, queued])
    assert await a.finish(running, JobState.SUCCESS, result=b"1", error=None,
                          ended_at_ms=now_ms())
    assert await a.pause(queued.id) is not None
    await heard_b.until(lambda: {running.id, queued.id} <= set(heard_b.changed))


async def test_many_commits_at_once_send_few_notices(pair):
    a, b, heard_a, heard_b = pair
    jobs = [make_job() for _ in range(100)]
    await asyncio.gather(*(a.insert([job]) for job in jobs))
    last = make_job(scheduled_at_ms=now_ms() + 90_000)
    await a.insert([last])
    await heard_b.until(lambda: last.scheduled_at_ms in heard_b.due)
    # one NOTIFY in flight at a time; whatever commits meanwhile rides on the next one
    assert len(heard_b.due) < 20


async def test_a_dropped_listener_comes_back_and_hears_again(pair, pg_url):
    a, b, heard_a, heard_b = pair
    assert b.listener is not None
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", b.listener.pid)
    finally:
        await conn.close()
    # back, and it tells its server to look at the queue: notices may have been lost
    await heard_b.until(lambda: b.listener.reopened == 1 and heard_b.due)
    job = make_job(scheduled_at_ms=now_ms() + 30_000)
    await a.insert([job])
    await heard_b.until(lambda: job.scheduled_at_ms in heard_b.due)


async def test_concurrent_duplicates_from_two_servers_collapse_to_one(pair):
    a, b, _, _ = pair
    results = await asyncio.gather(
        *(store.insert([make_job(owner="alice", idempotency_key="order-17")])
          for store in (a, b) for _ in range(5)),
        return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DuplicateJob) for r in results if r is not None)
