"""WAL checkpoints run beside the writer, never inside a commit, and keep the WAL small."""

from __future__ import annotations

import asyncio
import os
import sqlite3

from aioqueue.store.sqlite import SQLiteStore
from tests.factories import make_job

PAGE = 4096


async def _until(predicate, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "gave up waiting"
        await asyncio.sleep(0.01)


async def test_no_commit_checkpoints_by_itself(tmp_path):
    store = SQLiteStore(str(tmp_path / "c.db"))
    await store.open()
    try:
        rows = await store._writer.execute_fetchall("PRAGMA wal_autocheckpoint")
        assert list(rows) == [(0,)]
    finally:
        await store.close()


async def test_a_bulk_insert_wakes_the_checkpoint_thread(tmp_path):
    store = SQLiteStore(str(tmp_path / "c.db"))
    await store.open()
    try:
        await store.insert([make_job() for _ in range(2500)])  # one commit, many rows
        await _until(lambda: store._checkpoints.runs >= 1)
    finally:
        await store.close()


async def test_the_wal_starts_over_while_the_writer_keeps_writing(tmp_path):
    path = str(tmp_path / "c.db")
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        for _ in range(2000):  # one row a commit: some 11,000 WAL pages if never started over
            await store.insert([make_job()])
        assert store._checkpoints.runs >= 5
        assert os.path.getsize(path + "-wal") < 4000 * PAGE
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (2000,)
