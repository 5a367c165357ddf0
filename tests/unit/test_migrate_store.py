"""``aioqueue migrate-store``: a copy keeps every job, in every state, field for field, and the
outbox; a round trip through PostgreSQL gives back the source; a target with jobs is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aioqueue.store import copy as store_copy
from aioqueue.errors import AioqueueError
from aioqueue.models import JobState, now_ms
from aioqueue.store import JobStore
from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job

YEAR_MS = 365 * 24 * 3600 * 1000


async def fill(store: JobStore) -> None:
    """Jobs in every state with every optional field set, and notices pending and failed."""
    now = now_ms()
    full = dict(owner="alice", request_hash="h" * 16, callback_url="http://127.0.0.1:9/hook",
                notify_email="ops@example.org", input=b'{"n": 1}')
    await store.insert([make_job(priority=9, max_attempts=5, scheduled_at_ms=now, **full)
                        for _ in range(3)])
    await store.insert([make_job(idempotency_key="key-1", **full)])
    await store.insert([make_job(idempotency_key="key-1", owner="bob", priority=-3)])
    await store.insert([make_job(scheduled_at_ms=now + YEAR_MS, process="later")])
    await store.insert([make_job(process="pausable", priority=1)])
    ok, bad, busy = await store.claim(3, now_ms())
    await store.set_progress(busy, b'{"percent": 50.0}')
    await store.finish(ok, JobState.SUCCESS, result=b'{"r": [1, 2]}', error=None,
                       ended_at_ms=now + 1)
    await store.finish(bad, JobState.FAILURE, result=None, error=b'{"code": "handler_error"}',
                       ended_at_ms=now + 2)
    keyed = await store.find_by_key("key-1", owner="alice")
    await store.cancel(keyed.id, error=b'{"code": "cancelled"}', ended_at_ms=now + 3)
    paused = (await store.list_jobs(process="pausable"))[0][1]
    await store.pause(paused.id)
    notices = await store.due_notices(now + YEAR_MS, 100)
    assert len(notices) >= 3
    await store.notice_retry(notices[0].seq, due_at_ms=now + 60_000, error="refused", give_up=False)
    await store.notice_retry(notices[1].seq, due_at_ms=now, error="550 no such user", give_up=True)


async def snapshot(store: JobStore) -> tuple[list, list]:
    """Every job with its position, and every outbox row, as the contract reads them."""
    jobs = await store.list_jobs(limit=10_000)
    notices = [row for _, row in await store.export_notices(after=0, limit=10_000)]
    return jobs, notices


async def opened(store: JobStore) -> JobStore:
    await store.open()
    return store


async def test_fill_covers_every_state_and_both_notice_states(tmp_path: Path) -> None:
    store = await opened(SQLiteStore(str(tmp_path / "src.db")))
    try:
        await fill(store)
        jobs, notices = await snapshot(store)
    finally:
        await store.close()
    assert {job.state for _, job in jobs} == set(JobState)
    assert {row.state for row in notices} == {"pending", "failed"}
    assert any(row.attempts == 1 and row.last_error == "refused" for row in notices)


async def test_sqlite_copy_keeps_every_field_position_and_notice(tmp_path: Path) -> None:
    src = await opened(SQLiteStore(str(tmp_path / "src.db")))
    dst = await opened(SQLiteStore(str(tmp_path / "dst.db")))
    try:
        await fill(src)
        copied = await store_copy.copy_store(src, dst, page=3)
        assert await snapshot(dst) == await snapshot(src)
        assert copied.jobs == 7 and copied.notices == len((await snapshot(src))[1])
        newest = (await dst.list_jobs(limit=1))[0][0]
        await dst.insert([make_job()])
        assert (await dst.list_jobs(limit=1))[0][0] > newest
    finally:
        await src.close()
        await dst.close()


async def test_round_trip_through_postgres_gives_back_the_source(tmp_path: Path, pg_url: str
                                                                 ) -> None:
    src = await opened(SQLiteStore(str(tmp_path / "src.db")))
    pg = await opened(store_copy.open_store(pg_url, must_exist=True))
    back = await opened(SQLiteStore(str(tmp_path / "back.db")))
    try:
        await fill(src)
        before = await snapshot(src)
        await store_copy.copy_store(src, pg, page=3)
        assert await snapshot(pg) == before
        await store_copy.copy_store(pg, back, page=5)
        assert await snapshot(back) == before
    finally:
        for store in (src, pg, back):
            await store.close()


async def test_a_target_with_jobs_is_refused_and_left_alone(tmp_path: Path) -> None:
    src = await opened(SQLiteStore(str(tmp_path / "src.db")))
    dst = await opened(SQLiteStore(str(tmp_path / "dst.db")))
    try:
        await fill(src)
        await dst.insert([make_job(process="mine")])
        with pytest.raises(AioqueueError, match="already holds jobs"):
            await store_copy.copy_store(src, dst)
        assert [job.process for _, job in await dst.list_jobs()] == ["mine"]
    finally:
        await src.close()
        await dst.close()


async def test_progress_is_reported_while_copying(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_copy, "PROGRESS_EVERY", 10)
    src = await opened(SQLiteStore(str(tmp_path / "src.db")))
    dst = await opened(SQLiteStore(str(tmp_path / "dst.db")))
    lines: list[str] = []
    try:
        await src.insert([make_job() for _ in range(35)])
        await store_copy.copy_store(src, dst, page=4, progress=lines.append)
    finally:
        await src.close()
        await dst.close()
    assert [line.split(" jobs")[0] for line in lines] == [
        "copied 12", "copied 20", "copied 32"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aioqueue", "migrate-store", *args],
                          capture_output=True, text=True, timeout=60)


async def test_cli_copies_then_refuses_a_second_copy_with_one_line(tmp_path: Path) -> None:
    source, target = tmp_path / "src.db", tmp_path / "dst.db"
    src = await opened(SQLiteStore(str(source)))
    try:
        await fill(src)
    finally:
        await src.close()
    first = cli("--from", str(source), "--to", str(target))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("copied 7 jobs (failure 2, paused 1, queued 2, running 1, "
                                   "success 1) and ")
    again = cli("--from", str(source), "--to", str(target))
    assert again.returncode == 2
    assert again.stderr.startswith("aioqueue: ") and "already holds jobs" in again.stderr
    assert again.stderr.count("\n") == 1
    missing = cli("--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "x.db"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"aioqueue: no such database file: {tmp_path / 'nope.db'}")
    assert not (tmp_path / "x.db").exists()
