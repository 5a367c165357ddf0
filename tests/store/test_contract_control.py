"""The storage contract, clients' side: cancel, pause, resume, delete, list, purge, outbox."""

from __future__ import annotations

from aioqueue.models import JobState, now_ms
from tests.factories import make_job

ERROR = b'{"code": "cancelled", "message": "by a test"}'


async def test_cancel_ends_an_active_job_once_and_only_for_its_owner(store):
    job = make_job(owner="alice", state=JobState.RUNNING, attempts=1)
    await store.insert([job])
    assert await store.cancel(job.id, error=ERROR, ended_at_ms=5, owner="bob") is None
    ended = await store.cancel(job.id, error=ERROR, ended_at_ms=5, owner="alice")
    assert (ended.state, ended.error, ended.ended_at_ms) == (JobState.FAILURE, ERROR, 5)
    assert await store.get(job.id) == ended
    assert await store.cancel(job.id, error=ERROR, ended_at_ms=6) is None


async def test_pause_and_resume_follow_their_guards(store):
    queued, done = make_job(), make_job(state=JobState.SUCCESS, ended_at_ms=1)
    await store.insert([queued, done])
    assert await store.pause(done.id) is None
    assert await store.resume(queued.id, running=False) is None  # not paused
    paused = await store.pause(queued.id)
    assert paused.state is JobState.PAUSED
    assert await store.pause(queued.id) is None
    assert await store.claim(5, now_ms()) == []  # a paused job is not claimed
    resumed = await store.resume(queued.id, running=False)
    assert resumed.state is JobState.QUEUED
    held = make_job(state=JobState.RUNNING, attempts=1)
    await store.insert([held])
    await store.pause(held.id)
    assert (await store.resume(held.id, running=True)).state is JobState.RUNNING


async def test_resume_of_a_job_whose_last_run_was_lost_never_passes_max_attempts(store):
    lost = make_job(state=JobState.PAUSED, attempts=1, max_attempts=1)
    await store.insert([lost])
    resumed = await store.resume(lost.id, running=False)
    assert resumed.state is JobState.QUEUED and resumed.attempts == 0
    claimed = await store.claim(1, now_ms(), {"echo": 1})
    assert [j.attempts for j in claimed] == [1]


async def test_delete_removes_only_a_terminal_job_and_frees_its_key(store):
    active = make_job()
    done = make_job(state=JobState.SUCCESS, ended_at_ms=1, owner="alice", idempotency_key="k")
    await store.insert([active, done])
    assert not await store.delete(active.id)
    assert not await store.delete(done.id, owner="bob")
    assert await store.delete(done.id, owner="alice")
    assert await store.get(done.id) is None
    assert not await store.delete(done.id)
    await store.insert([make_job(owner="alice", idempotency_key="k")])


async def test_purge_removes_old_terminal_jobs_oldest_first_up_to_the_batch(store):
    now = now_ms()
    old = [make_job(state=JobState.SUCCESS, ended_at_ms=now - 10_000 + n) for n in range(5)]
    recent = make_job(state=JobState.FAILURE, ended_at_ms=now)
    active = make_job()
    await store.insert([*old, recent, active])
    assert await store.purge(now - 1000, 3) == 3
    assert [await store.get(j.id) for j in old[:3]] == [None] * 3
    assert await store.purge(now - 1000, 3) == 2
    assert await store.purge(now - 1000, 3) == 0
    assert {j.id for _, j in await store.list_jobs()} == {recent.id, active.id}


async def test_listing_is_newest_first_and_pages_by_position(store):
    jobs = [make_job(process="a" if n % 2 else "b", owner="alice" if n < 3 else None)
            for n in range(6)]
    for job in jobs:  # one call each: each is newer than the one before
        await store.insert([job])
    rows = await store.list_jobs(limit=4)
    assert [j.id for _, j in rows] == [j.id for j in reversed(jobs)][:4]
    positions = [p for p, _ in rows]
    assert positions == sorted(positions, reverse=True)
    rest = await store.list_jobs(before=positions[-1], limit=4)
    assert [j.id for _, j in rest] == [jobs[1].id, jobs[0].id]
    assert [j.id for _, j in await store.list_jobs(process="a")] == [
        jobs[5].id, jobs[3].id, jobs[1].id]
    assert [j.id for _, j in await store.list_jobs(owner="alice")] == [
        jobs[2].id, jobs[1].id, jobs[0].id]
    assert await store.list_jobs(state=JobState.RUNNING) == []


async def test_an_end_writes_its_notices_and_nothing_else_does(store):
    hooked = make_job(state=JobState.RUNNING, attempts=1, callback_url="http://127.0.0.1/h",
                      notify_email="ana@example.com")
    quiet = make_job(state=JobState.RUNNING, attempts=1)
    retried = make_job(state=JobState.RUNNING, attempts=1, callback_url="http://127.0.0.1/h")
    cancelled = make_job(callback_url="http://127.0.0.1/c")
    await store.insert([hooked, quiet, retried, cancelled])
    await store.requeue(retried, scheduled_at_ms=now_ms())
    await store.finish(quiet, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert await store.due_notices(now_ms(), 10) == []
    assert await store.next_notice_due_ms() is None
    assert await store.finish(hooked, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert not await store.finish(hooked, JobState.FAILURE, result=None, error=b"{}",
                                  ended_at_ms=2)
    await store.cancel(cancelled.id, error=ERROR, ended_at_ms=3)
    notices = await store.due_notices(now_ms(), 10)
    assert [(n.job_id, n.kind, n.target, n.attempts) for n in notices] == [
        (hooked.id, "webhook", "http://127.0.0.1/h", 0),
        (hooked.id, "email", "ana@example.com", 0),
        (cancelled.id, "webhook", "http://127.0.0.1/c", 0),
    ]


async def test_a_notice_is_retried_delivered_or_given_up(store):
    job = make_job(state=JobState.RUNNING, attempts=1, callback_url="http://127.0.0.1/h")
    other = make_job(state=JobState.RUNNING, attempts=1, notify_email="ana@example.com")
    await store.insert([job, other])
    await store.finish(job, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=10)
    await store.finish(other, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=11)
    notice, mail = await store.due_notices(now_ms(), 10)
    later = now_ms() + 60_000
    await store.notice_retry(notice.seq, due_at_ms=later, error="503", give_up=False)
    # the retried one is not due now (a shared backend also holds back the mail it handed out)
    assert notice.seq not in {n.seq for n in await store.due_notices(now_ms(), 10)}
    await store.notice_delivered(mail.seq)
    await store.notice_delivered(mail.seq)  # twice is harmless
    assert await store.next_notice_due_ms() == later
    (again,) = await store.due_notices(later, 10)
    assert again.attempts == 1
    await store.notice_retry(notice.seq, due_at_ms=later, error="503 again", give_up=True)
    assert await store.next_notice_due_ms() is None
    assert await store.failed_notices(job.id) == [("webhook", 2, "503 again")]
    assert await store.failed_notices(other.id) == []
