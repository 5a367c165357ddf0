"""The fan-out hub: who gets which change, and that slow readers stay bounded."""

from __future__ import annotations

import time

import pytest

from aioqueue.http import hub as hub_module
from aioqueue.http.hub import Hub
from aioqueue.models import Job, JobState, new_job_id, progress_json


def _job(owner: str | None = None, state: JobState = JobState.RUNNING, **changes) -> Job:
    return Job(
        id=new_job_id(), process="p", state=state, input=b"null", result=None, error=None,
        progress=None, attempts=1, max_attempts=1, priority=0, created_at_ms=1,
        scheduled_at_ms=1, started_at_ms=1, ended_at_ms=None, owner=owner,
    ).evolve(**changes)


async def test_a_job_reader_sees_only_that_job_and_only_its_latest_change():
    hub = Hub()
    job, other = _job(), _job()
    with hub.subscribe(job_id=job.id) as sub:
        for percent in range(100):
            hub.publish(job.evolve(progress=progress_json(percent, None)))
        hub.publish(other)
        change = await sub.next_change(1)
        assert change.job.progress == progress_json(99, None)
        with pytest.raises(TimeoutError):
            await sub.next_change(0.01)
    assert hub.subscribers == 0


async def test_the_all_jobs_reader_is_filtered_by_owner():
    hub = Hub()
    mine, theirs = _job(owner="ana"), _job(owner="bo")
    with hub.subscribe(owner="ana") as ana, hub.subscribe() as admin:
        hub.publish(mine)
        hub.publish(theirs)
        assert (await ana.next_change(1)).job.id == mine.id
        with pytest.raises(TimeoutError):
            await ana.next_change(0.01)
        assert [(await admin.next_change(1)).job.id for _ in range(2)] == [mine.id, theirs.id]


async def test_a_reader_too_far_behind_is_disconnected_not_buffered():
    hub = Hub(max_pending=3)
    with hub.subscribe() as slow:
        for _ in range(4):
            hub.publish(_job())
        assert slow.end_reason == "lagged"
        assert await slow.next_change(1) is None
        assert hub.subscribers == 0


async def test_a_reader_s_id_moves_only_with_a_read_begun_after_its_start():
    hub = Hub()
    with hub.subscribe() as early, hub.subscribe() as late:
        early.start("1")
        read_begun = time.monotonic_ns()
        late.start("5")
        hub.changes_read("7", read_begun)
        assert await early.next_changes(1) == []  # woken with no change: only the id moved
        assert (early.cursor, early.take_moved()) == ("7", True)
        assert (late.cursor, late.take_moved()) == ("5", False)  # its start came after
        hub.changes_lost()
        assert early.end_reason == late.end_reason == "lagged"


async def test_close_ends_every_reader():
    hub = Hub()
    sub = hub.subscribe(job_id=_job().id)
    hub.close()
    assert await sub.next_change(1) is None
    assert sub.end_reason == "closed"


def _big(size: int, **changes) -> Job:
    """A job whose encoded change is a little over ``size`` bytes (its result)."""
    return _job(state=JobState.SUCCESS, ended_at_ms=2,
                result=b'"' + b"x" * size + b'"', **changes)


async def test_each_change_is_encoded_once_for_every_reader(monkeypatch):
    hub = Hub()
    encodings = []
    real = hub_module.render
    monkeypatch.setattr(hub_module, "render",
                        lambda *args, **kw: encodings.append(1) or real(*args, **kw))
    subs = [hub.subscribe() for _ in range(50)]
    hub.publish(_job())
    frames = {id((await sub.next_changes(1))[0].frame()) for sub in subs}
    assert len(encodings) == 1 and len(frames) == 1


async def test_a_reader_holding_too_many_bytes_is_disconnected():
    hub = Hub(max_pending_bytes=10_000)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        hub.publish(_big(50_000))  # one change always fits, however large
        assert slow.end_reason is None
        assert len(await fast.next_changes(1)) == 1
        hub.publish(_big(100))
        assert slow.end_reason == "lagged" and fast.end_reason is None
        assert await slow.next_changes(1) == []
    assert hub.pending_bytes == 0


async def test_over_the_budget_the_reader_holding_most_goes_first():
    hub = Hub(max_pending_bytes=1 << 20, budget_bytes=30_000)
    with hub.subscribe() as slowest, hub.subscribe() as slow:
        for _ in range(2):
            hub.publish(_big(8_000))
        await slow.next_changes(1)
        # a change both wait for counts once: 3 x 8 kB, under the budget
        hub.publish(_big(8_000))
        assert slowest.end_reason is None and hub.pending_bytes < 30_000
        hub.publish(_big(8_000))
        assert slowest.end_reason == "lagged" and slow.end_reason is None
        assert 16_000 < hub.pending_bytes < 17_200  # two changes of 8 kB and their job objects


async def test_followed_says_whether_any_reader_is_connected():
    # the change feed reads the log after a change only while this is true
    hub, job = Hub(), _job()
    assert not hub.followed()
    with hub.subscribe(job_id=job.id):
        assert hub.followed()
        with hub.subscribe(owner="ana"):
            assert hub.followed()
        assert hub.followed()
    assert not hub.followed()
    with hub.subscribe():
        assert hub.followed()
    assert not hub.followed() and hub.subscribers == 0
