"""The storage contract, workers' side: insert, claim, end, retry, progress, recovery.

Every test runs against every backend (see ``conftest.BACKENDS``), as huey's
``StorageTests`` do: one behaviour, one suite.
"""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.errors import DuplicateJob, Unavailable
from aioqueue.models import ErrorCode, Job, JobState, error_json, now_ms
from tests.factories import make_job


def running(**changes) -> Job:
    return make_job(**{"state": JobState.RUNNING, "attempts": 1, "started_at_ms": now_ms(),
                       **changes})


async def test_an_inserted_job_reads_back_field_for_field_and_survives_a_reopen(store,
                                                                              make_store):
    job = make_job(owner="alice", idempotency_key="k", request_hash="h", priority=3,
                   callback_url="http://127.0.0.1/hook", notify_email="ana@example.com")
    await store.insert([job])
    assert await store.get(job.id) == job
    other = make_store()
    await other.open()
    try:
        assert await other.get(job.id) == job
    finally:
        await other.close()


async def test_get_with_an_owner_sees_only_that_clients_jobs(store):
    job = make_job(owner="alice")
    await store.insert([job])
    assert await store.get(job.id, owner="alice") == job
    assert await store.get(job.id, owner="bob") is None
    assert await store.get("0" * 32) is None


async def test_a_taken_idempotency_key_is_refused_per_owner_and_stores_nothing(store):
    first = make_job(owner="alice", idempotency_key="k")
    await store.insert([first])
    again = make_job(owner="alice", idempotency_key="k")
    with pytest.raises(DuplicateJob):
        await store.insert([again])
    assert await store.get(again.id) is None
    await store.insert([make_job(owner="bob", idempotency_key="k")])
    anonymous = make_job(idempotency_key="k")
    await store.insert([anonymous])
    with pytest.raises(DuplicateJob):
        await store.insert([make_job(idempotency_key="k")])
    assert await store.find_by_key("k", owner=None) == anonymous
    assert await store.find_by_key("k", owner="alice") == first
    assert await store.find_by_key("k", owner="carol") is None


async def test_concurrent_inserts_with_the_same_key_store_exactly_one(store):
    jobs = [make_job(owner="alice", idempotency_key="same") for _ in range(5)]
    outcomes = await asyncio.gather(*(store.insert([j]) for j in jobs), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, DuplicateJob) for o in outcomes if o is not None)


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
    assert all(j.started_at_ms == now for j in claimed)
    assert [j.id for j in await store.claim(10, now)] == [low_old.id]
    assert await store.claim(10, now) == []
    assert await store.next_due_ms() == future.scheduled_at_ms


async def test_concurrent_claims_never_hand_out_a_job_twice(store):
    await store.insert([make_job() for _ in range(30)])
    batches = await asyncio.gather(*(store.claim(4, now_ms()) for _ in range(10)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 30


async def test_claim_with_caps_takes_only_the_named_processes_each_up_to_its_cap(store):
    await store.insert([make_job(process=p) for p in ("a", "a", "a", "b", "b", "c")])
    claimed = await store.claim(10, now_ms(), {"a": 2, "b": 5, "c": 0})
    assert sorted(j.process for j in claimed) == ["a", "a", "b", "b"]
    assert await store.next_due_ms(["c"]) is not None
    assert await store.next_due_ms(["b"]) is None
    assert await store.next_due_ms([]) is None


async def test_claim_process_takes_only_that_process(store):
    await store.insert([make_job(process="a"), make_job(process="b"), make_job(process="a")])
    claimed = await store.claim_process("a", 5, now_ms())
    assert [j.process for j in claimed] == ["a", "a"]
    assert all(j.state is JobState.RUNNING and j.attempts == 1 for j in claimed)


async def test_finish_ends_an_active_job_once_and_never_changes_a_terminal_one(store):
    job = running()
    await store.insert([job])
    assert await store.finish(job, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    assert not await store.finish(job, JobState.FAILURE, result=None, error=b"{}",
                                  ended_at_ms=2)
    stored = await store.get(job.id)
    assert (stored.state, stored.result, stored.ended_at_ms) == (JobState.SUCCESS, b"1", 1)
    assert not await store.finish(make_job(), JobState.SUCCESS, result=b"1", error=None,
                                  ended_at_ms=1)  # never stored


async def test_ends_written_at_once_still_report_each_guard(store):
    active, ended = running(), running()
    await store.insert([active, ended])
    assert await store.finish(ended, JobState.SUCCESS, result=b"0", error=None, ended_at_ms=1)
    outcomes = await asyncio.gather(
        store.finish(active, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=2),
        store.finish(ended, JobState.FAILURE, result=None, error=b"{}", ended_at_ms=3),
    )
    assert outcomes == [True, False]
    assert (await store.get(ended.id)).result == b"0"
    assert (await store.get(active.id)).result == b"1"


async def test_finish_soon_queues_the_end_at_once_and_answers_as_finish_would(store):
    """Every job's end passes here: its future is no Task, it settles as ``finish`` returns,
    and a caller that stops waiting does not stop the write."""
    active, ended, dropped = running(), running(), running()
    await store.insert([active, ended, dropped])
    assert await store.finish(ended, JobState.SUCCESS, result=b"0", error=None, ended_at_ms=1)
    ends = [store.finish_soon(active, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=2),
            store.finish_soon(ended, JobState.FAILURE, result=None, error=b"{}", ended_at_ms=3),
            store.finish_soon(dropped, JobState.SUCCESS, result=b"2", error=None,
                              ended_at_ms=4)]
    assert not any(isinstance(end, asyncio.Task) for end in ends)
    ends[2].cancel()
    assert await asyncio.gather(*ends[:2]) == [True, False]
    stored = [await store.get(job.id) for job in (active, ended)]
    assert [(job.state, job.result) for job in stored] == [(JobState.SUCCESS, b"1"),
                                                           (JobState.SUCCESS, b"0")]
    # queued with the others, before any await: committed with them
    assert (await store.get(dropped.id)).result == b"2"


async def test_requeue_retries_or_gives_the_attempt_back_and_keeps_a_pause(store):
    job, paused = running(attempts=2), running()
    await store.insert([job, paused])
    assert await store.requeue(job, scheduled_at_ms=5, give_back_attempt=True)
    stored = await store.get(job.id)
    assert (stored.state, stored.attempts, stored.scheduled_at_ms) == (JobState.QUEUED, 1, 5)
    assert not await store.requeue(job, scheduled_at_ms=5)  # only a running or paused job
    assert await store.pause(paused.id) is not None
    assert await store.requeue(paused, scheduled_at_ms=7)
    stored = await store.get(paused.id)
    assert (stored.state, stored.attempts) == (JobState.PAUSED, 1)


async def test_progress_keeps_the_latest_report_and_never_touches_an_ended_job(store):
    job, done = running(), running()
    await store.insert([job, done])
    await asyncio.gather(*(store.set_progress(job, f'{{"percent": {n}}}'.encode())
                           for n in range(10)))
    assert (await store.get(job.id)).progress == b'{"percent": 9}'
    await store.set_progress(done, b'{"percent": 1}')
    assert await store.finish(done, JobState.SUCCESS, result=b"1", error=None, ended_at_ms=1)
    await store.set_progress(done, b'{"percent": 2}')
    assert (await store.get(done.id)).progress == b'{"percent": 1}'


async def test_recovery_requeues_jobs_with_attempts_left_and_interrupts_the_rest(store):
    left = running(max_attempts=3)
    spent = running(attempts=3, max_attempts=3, notify_email="ana@example.com")
    done = make_job(state=JobState.SUCCESS, result=b"1", ended_at_ms=1)
    await store.insert([left, spent, done])
    assert await store.recover(now_ms()) == (1, 1)
    requeued = await store.get(left.id)
    assert (requeued.state, requeued.attempts) == (JobState.QUEUED, 1)
    ended = await store.get(spent.id)
    assert ended.state is JobState.FAILURE
    assert ended.error == error_json(ErrorCode.INTERRUPTED, "the server stopped while the job ran")
    assert (await store.get(done.id)) == done
    (notice,) = await store.due_notices(now_ms(), 10)
    assert (notice.job_id, notice.kind) == (spent.id, "email")


async def test_counts_follow_the_active_states(store):
    assert await store.count_active() == 0
    assert await store.count_by_state() == {"queued": 0, "running": 0, "paused": 0}
    await store.insert([make_job(), make_job(), running(),
                        make_job(state=JobState.SUCCESS, ended_at_ms=1)])
    assert await store.count_active() == 3
    assert await store.count_by_state() == {"queued": 2, "running": 1, "paused": 0}


async def test_writes_after_close_are_refused(make_store):
    store = make_store()
    await store.open()
    await store.close()
    with pytest.raises(Unavailable):
        await store.insert([make_job()])
