"""Claims on a shared PostgreSQL database: node, lease and token. A stale token is refused
by the database's WHERE clause; a silent server's claims are rescued; a renewal reports
what clients did and what this server lost."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.models import ErrorCode, JobState, error_json, now_ms
from aioqueue.store.base import StoreListener
from aioqueue.store.postgres import PostgresStore
from tests.factories import make_job


class Told(StoreListener):
    def __init__(self) -> None:
        self.changed: list[str] = []
        self.lost: list[str] = []

    def job_changed(self, job_id: str) -> None:
        self.changed.append(job_id)

    def claims_lost(self, job_ids) -> None:
        self.lost.extend(job_ids)


@pytest.fixture
async def pair(pg_url):
    """Two servers' stores on one schema, with leases of half a second."""
    a, b = PostgresStore(pg_url, lease_s=0.5), PostgresStore(pg_url, lease_s=0.5)
    told = Told()
    a.subscribe(told)
    await a.open()
    await b.open()
    yield a, b, told
    await a.close()
    await b.close()


async def _expire(store: PostgresStore) -> None:
    """Let every lease of ``store``'s node run out, as if it had been frozen."""
    await store._run(lambda conn: conn.execute(
        "UPDATE jobs SET lease_until_ms = 0 WHERE node = $1", store.node))


async def test_a_stale_token_is_refused_by_the_database(pair):
    a, b, _ = pair
    await a.insert([make_job(max_attempts=3)])
    (first,) = await a.claim(1, now_ms())
    assert first.claim is not None
    await _expire(a)
    assert await b.recover(now_ms()) == (1, 0)  # b rescues it
    (second,) = await b.claim(1, now_ms())
    assert second.id == first.id and second.claim != first.claim and second.attempts == 2
    # the frozen run wakes: every write it carries is refused, in SQL
    await a.set_progress(first, b'{"percent": 1}')
    assert not await a.finish(first, JobState.SUCCESS, result=b'"late"', error=None,
                              ended_at_ms=now_ms())
    assert not await a.requeue(first, scheduled_at_ms=now_ms())
    job = await b.get(first.id)
    assert (job.state, job.progress, job.result) == (JobState.RUNNING, None, None)
    assert await b.finish(second, JobState.SUCCESS, result=b'"b"', error=None,
                          ended_at_ms=now_ms())
    assert (await a.get(first.id)).result == b'"b"'


async def test_a_rescue_never_undoes_a_live_end(pair):
    a, b, _ = pair
    await a.insert([make_job(max_attempts=3)])
    (job,) = await a.claim(1, now_ms())
    assert await a.finish(job, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=now_ms())
    await _expire(a)
    assert await b.recover(now_ms()) == (0, 0)
    assert (await b.get(job.id)).state is JobState.SUCCESS


async def test_recovery_leaves_a_live_servers_claims_alone(pair):
    a, b, _ = pair
    await a.insert([make_job()])
    (job,) = await a.claim(1, now_ms())
    assert await b.recover(now_ms()) == (0, 0)
    assert (await b.get(job.id)).state is JobState.RUNNING


async def test_a_silent_servers_last_attempt_ends_interrupted_with_its_notice(pair):
    a, b, _ = pair
    await a.insert([make_job(notify_email="ana@example.com", max_attempts=1)])
    (job,) = await a.claim(1, now_ms())
    await _expire(a)
    assert await b.recover(now_ms()) == (0, 1)
    ended = await b.get(job.id)
    assert ended.state is JobState.FAILURE
    assert ended.error == error_json(ErrorCode.INTERRUPTED, "the server stopped while the job ran")
    (notice,) = await b.due_notices(now_ms() + 1000, 10)
    assert notice.job_id == job.id


async def test_the_renewal_reports_a_cancel_and_a_lost_claim(pair):
    a, b, told = pair
    await a.insert([make_job(), make_job()])
    kept, taken = await a.claim(2, now_ms())
    await b.cancel(kept.id, error=b"{}", ended_at_ms=now_ms())
    await a._run(lambda conn: conn.execute(
        "UPDATE jobs SET node = 'elsewhere' WHERE id = $1", taken.id))
    await a._heartbeat.beat(asyncio.get_running_loop().time())
    assert kept.id in told.changed
    assert told.lost == [taken.id]
    (row,) = await a._fetch("SELECT node, claim FROM jobs WHERE id = $1", kept.id)
    assert tuple(row) == (None, None)  # the cancelled job's claim is gone


async def test_nodes_lists_both_servers_until_one_deregisters(pair):
    a, b, _ = pair
    await a.insert([make_job()])
    await a.claim(1, now_ms())
    nodes = {n.id: n for n in await b.nodes(0)}
    assert set(nodes) == {a.node, b.node}
    assert nodes[a.node].running == 1 and nodes[b.node].running == 0
    assert all(n.alive for n in nodes.values())
    await b.close()
    assert [n.id for n in await a.nodes(0)] == [a.node]
    await b.open()
