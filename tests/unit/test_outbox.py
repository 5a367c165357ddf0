"""The outbox: a job's notices are committed with its end, by whatever statement ends it."""

from __future__ import annotations

import pytest

from aioqueue.models import ErrorCode, Job, JobState, error_json, new_job_id, now_ms
from aioqueue.store import SCHEMA_VERSION, Store


@pytest.fixture
async def store(tmp_path):
    store = Store(str(tmp_path / "jobs.db"))
    await store.open()
    yield store
    await store.close()


def _job(**changes) -> Job:
    now = now_ms()
    job = Job(
        id=new_job_id(), process="echo", state=JobState.RUNNING, input=b"1", result=None,
        error=None, progress=None, attempts=1, max_attempts=1, priority=0, created_at_ms=now,
        scheduled_at_ms=now, started_at_ms=now, ended_at_ms=None,
    )
    return job.evolve(**changes)


async def test_finish_writes_the_notices_in_the_same_commit(store):
    job = _job(callback_url="http://127.0.0.1/hook", notify_email="ana@example.com")
    await store.insert([job])
    commits = store.commits
    assert await store.finish(job.id, JobState.SUCCESS, result=b"1", error=None,
                              ended_at_ms=now_ms())
    assert store.commits == commits + 1
    notices = await store.due_notices(now_ms(), 10)
    assert [(n.job_id, n.kind, n.target, n.attempts) for n in notices] == [
        (job.id, "webhook", "http://127.0.0.1/hook", 0),
        (job.id, "email", "ana@example.com", 0),
    ]


async def test_a_finish_that_matches_nothing_writes_no_notice(store):
    job = _job(callback_url="http://127.0.0.1/hook")
    await store.insert([job])
    assert await store.finish(job.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert not await store.finish(job.id, JobState.FAILURE, result=None, error=b"{}",
                                  ended_at_ms=2)
    assert len(await store.due_notices(now_ms(), 10)) == 1


async def test_jobs_without_notices_and_non_terminal_changes_write_none(store):
    quiet, noisy = _job(), _job(callback_url="http://127.0.0.1/hook")
    await store.insert([quiet, noisy])
    await store.requeue(noisy.id, scheduled_at_ms=now_ms())
    await store.finish(quiet.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert await store.due_notices(now_ms(), 10) == []


async def test_recovery_that_interrupts_a_job_queues_its_notice(store):
    job = _job(notify_email="ana@example.com")
    await store.insert([job])
    assert await store.recover(now_ms()) == (0, 1)
    (notice,) = await store.due_notices(now_ms(), 10)
    assert notice.kind == "email"
    assert (await store.get(job.id)).error == error_json(
        ErrorCode.INTERRUPTED, "the server stopped while the job ran")


async def test_retry_delivered_and_give_up(store):
    job = _job(callback_url="http://127.0.0.1/hook")
    await store.insert([job])
    await store.finish(job.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=10)
    (notice,) = await store.due_notices(now_ms(), 10)
    later = now_ms() + 60_000
    await store.notice_retry(notice.seq, due_at_ms=later, error="503", give_up=False)
    assert await store.due_notices(now_ms(), 10) == []
    assert await store.next_notice_due_ms() == later
    await store.notice_retry(notice.seq, due_at_ms=later, error="503 again", give_up=True)
    assert await store.next_notice_due_ms() is None
    assert await store.failed_notices(job.id) == [("webhook", 2, "503 again")]


async def test_reopening_keeps_pending_notices_and_the_schema(tmp_path):
    path = str(tmp_path / "jobs.db")
    first = Store(path)
    await first.open()
    job = _job(callback_url="http://127.0.0.1/hook")
    await first.insert([job])
    await first.finish(job.id, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    await first.close()
    second = Store(path)
    await second.open()
    try:
        assert [n.job_id for n in await second.due_notices(now_ms(), 10)] == [job.id]
        rows = await second._read("PRAGMA user_version", ())
        assert rows[0][0] == SCHEMA_VERSION
    finally:
        await second.close()
