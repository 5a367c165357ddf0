"""The storage contract, the change log: ``changes_since`` and ``prune_changes``."""

from __future__ import annotations

from aioqueue.models import JobState, now_ms
from tests.factories import make_job

ERROR = b'{"code": "cancelled", "message": "by a test"}'


async def _ids_since(store, cursor, **kwargs):
    page = await store.changes_since(cursor, limit=kwargs.pop("limit", 100), **kwargs)
    assert page.complete
    return [job.id for job in page.jobs], page.cursor


async def test_a_cursor_reads_each_changed_job_once_as_it_stands_now(store):
    start = (await store.changes_since(None, limit=10)).cursor
    a, b = make_job(), make_job()
    await store.insert([a, b])
    ids, after_insert = await _ids_since(store, start)
    assert sorted(ids) == sorted([a.id, b.id])
    assert (await _ids_since(store, after_insert))[0] == []
    [claimed] = await store.claim(1, now_ms(), {a.process: 1})
    await store.set_progress(claimed, b'{"percent": 50}')
    await store.set_progress(claimed, b'{"percent": 60}')
    page = await store.changes_since(after_insert, limit=10)
    assert [(j.id, j.state, j.progress) for j in page.jobs] == [
        (claimed.id, JobState.RUNNING, b'{"percent": 60}')]
    # an older cursor still reads everything after it
    ids, _ = await _ids_since(store, start)
    assert sorted(ids) == sorted([a.id, b.id])


async def test_every_kind_of_change_enters_the_log_and_other_writes_do_not(store):
    job = make_job()
    await store.insert([job])
    cursor = (await store.changes_since(None, limit=10)).cursor
    assert await store.pause(job.id) is not None
    ids, cursor = await _ids_since(store, cursor)
    assert ids == [job.id]
    assert await store.resume(job.id, running=False) is not None
    ids, cursor = await _ids_since(store, cursor)
    assert ids == [job.id]
    assert await store.cancel(job.id, error=ERROR, ended_at_ms=now_ms()) is not None
    ids, cursor = await _ids_since(store, cursor)
    assert ids == [job.id]
    assert await store.delete(job.id)  # a removed job is left out
    assert (await _ids_since(store, cursor))[0] == []


async def test_one_job_only_and_the_limit(store):
    jobs = [make_job() for _ in range(5)]
    start = (await store.changes_since(None, limit=10)).cursor
    await store.insert(jobs)
    ids, _ = await _ids_since(store, start, job_id=jobs[2].id)
    assert ids == [jobs[2].id]
    assert (await _ids_since(store, start, job_id="0" * 32))[0] == []
    page = await store.changes_since(start, limit=4)
    assert (page.complete, page.jobs) == (False, [])
    assert (await store.changes_since(start, limit=5)).complete


async def test_a_cursor_that_is_not_ours_reads_as_incomplete_never_an_error(store):
    await store.insert([make_job()])
    now = (await store.changes_since(None, limit=10)).cursor
    for garbage in ("", "x", "-1", "1" * 5000, "99999999999999999", "5:3:4", "1:2:3:4",
                    "18446744073709551615:1:", "\x00", "１２"):
        page = await store.changes_since(garbage, limit=10)
        assert (page.complete, page.jobs) == (False, []), garbage
        assert page.cursor  # where to read on from: now
    assert (await store.changes_since(now, limit=10)).complete


async def test_pruning_drops_old_changes_and_an_older_cursor_then_reads_as_incomplete(store):
    old = (await store.changes_since(None, limit=10)).cursor
    await store.insert([make_job()])
    await store.prune_changes(before_ms=0, now_ms=1000)  # marks the log at t=1000
    middle = (await store.changes_since(None, limit=10)).cursor
    late = make_job()
    await store.insert([late])
    assert (await store.changes_since(old, limit=10)).complete  # nothing dropped yet
    await store.prune_changes(before_ms=1500, now_ms=2000)  # drops what came before t=1000
    assert not (await store.changes_since(old, limit=10)).complete
    ids, _ = await _ids_since(store, middle)
    assert ids == [late.id]
    await store.insert([make_job()])
    ids, _ = await _ids_since(store, middle)
    assert len(ids) == 2
