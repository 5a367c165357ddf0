"""The SQLite group-commit writer's own behaviour (``store/sqlite/writer.py``): its thread
drains the batch without going back to the loop between commits, and keeps statement
journals in memory."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job


@pytest.fixture
async def store(tmp_path):
    store = SQLiteStore(str(tmp_path / "writer.db"))
    await store.open()
    yield store
    await store.close()


async def test_writes_queued_during_a_commit_are_committed_by_the_same_drain(store):
    group = store._group
    entered, go = threading.Event(), threading.Event()
    drains: list[int] = []
    commit, drain = group._commit, group._drain

    def held_commit(conn, batch):
        entered.set()
        go.wait(10)
        return commit(conn, batch)

    def counted_drain(conn):
        drains.append(1)
        return drain(conn)

    group._commit, group._drain = held_commit, counted_drain
    before = store.commits
    first = store.insert_soon([make_job()])
    assert await asyncio.to_thread(entered.wait, 10)  # the thread is inside the first commit
    later = [store.insert_soon([make_job()]) for _ in range(3)]
    go.set()
    await asyncio.gather(first, *later)
    # the three that came meanwhile made one more commit, taken by the thread at once
    assert store.commits - before == 2
    assert len(drains) == 1


async def test_each_caller_is_answered_only_after_its_own_commit(store):
    group = store._group
    go = threading.Event()
    commit = group._commit

    def held_commit(conn, batch):
        go.wait(10)
        return commit(conn, batch)

    group._commit = held_commit
    job = make_job()
    answer = store.insert_soon([job])
    await asyncio.sleep(0)
    assert not answer.done()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = ?", (job.id,)).fetchone() == (0,)
    go.set()
    await answer
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = ?", (job.id,)).fetchone() == (1,)


async def test_the_writer_keeps_statement_journals_in_memory(store):
    # a multi-row statement's journal would otherwise go to a temp file at every commit
    assert await store._writer.execute_fetchall("PRAGMA temp_store") == [(2,)]
