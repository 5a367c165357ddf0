"""The storage contract, copying a whole store: ``import_rows`` and ``export_notices``.

Every test runs against every backend (see ``conftest.BACKENDS``).
"""

from __future__ import annotations

import pytest

from aioqueue.errors import DuplicateJob
from aioqueue.models import JobState, now_ms
from aioqueue.store import OutboxRow
from tests.factories import make_job


def notice(job_id: str, **changes) -> OutboxRow:
    fields = dict(job_id=job_id, kind="webhook", target="http://127.0.0.1:9/hook",
                  state="pending", attempts=0, due_at_ms=1_000, last_error=None)
    return OutboxRow(**{**fields, **changes})


async def test_imported_jobs_keep_their_positions_and_every_field(store):
    ended = make_job(state=JobState.SUCCESS, attempts=2, result=b'{"r": 1}', progress=b"7",
                     started_at_ms=5, ended_at_ms=9, owner="alice", idempotency_key="k",
                     request_hash="h", callback_url="http://127.0.0.1/x", notify_email="a@b.c")
    queued = make_job(priority=-4, scheduled_at_ms=now_ms() + 60_000)
    await store.import_rows([(1_000, ended), (40, queued)], [])
    assert await store.list_jobs() == [(1_000, ended), (40, queued)]
    assert await store.find_by_key("k", owner="alice") == ended
    fresh = make_job()
    await store.insert([fresh])
    newest = (await store.list_jobs(limit=1))[0]
    assert newest[1] == fresh and newest[0] > 1_000


async def test_importing_a_job_makes_no_notice_of_its_end(store):
    job = make_job(state=JobState.FAILURE, error=b"{}", ended_at_ms=1, notify_email="a@b.c")
    await store.import_rows([(1, job)], [])
    assert await store.export_notices(after=0, limit=10) == []
    assert await store.due_notices(now_ms(), 10) == []


async def test_a_taken_id_position_or_key_fails_the_whole_call(store):
    first = make_job(owner="alice", idempotency_key="k")
    await store.import_rows([(10, first)], [])
    for clash in ((11, first.evolve(idempotency_key=None)),
                  (10, make_job()),
                  (12, make_job(owner="alice", idempotency_key="k"))):
        innocent = make_job()
        with pytest.raises(DuplicateJob):
            await store.import_rows([(13, innocent), clash], [notice(innocent.id)])
        assert await store.get(innocent.id) is None
    assert await store.list_jobs() == [(10, first)]
    assert await store.export_notices(after=0, limit=10) == []


async def test_a_job_imported_running_is_settled_by_recovery(store):
    job = make_job(state=JobState.RUNNING, attempts=1, started_at_ms=now_ms())
    await store.import_rows([(1, job)], [])
    assert await store.recover(now_ms()) == (1, 0)
    assert (await store.get(job.id)).state is JobState.QUEUED


async def test_notices_are_exported_as_imported_oldest_first_page_by_page(store):
    job = make_job(state=JobState.FAILURE, error=b"{}", ended_at_ms=1)
    rows = [notice(job.id), notice(job.id, kind="email", target="a@b.c", state="failed",
                                   attempts=5, due_at_ms=7, last_error="550 no such user"),
            notice(job.id, attempts=2, due_at_ms=3, last_error="timeout")]
    await store.import_rows([(1, job)], rows[:1])
    await store.import_rows([], rows[1:])
    first = await store.export_notices(after=0, limit=2)
    rest = await store.export_notices(after=first[-1][0], limit=2)
    assert [row for _, row in first + rest] == rows
    assert first[0][0] < first[1][0] < rest[0][0]
    assert await store.export_notices(after=rest[-1][0], limit=2) == []
    due = await store.due_notices(now_ms(), 10)
    assert [(n.job_id, n.kind, n.attempts) for n in due] == [(job.id, "webhook", 2),
                                                             (job.id, "webhook", 0)]
