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
        # one row a commit: some 11,000 WAL pages for 2,000 if never started over. Under
        # load the thread may get no CPU for a whole phase (both asserts below failed
        # now and then when they counted on it), so each phase waits for its run; the
        # WAL starts over in the next phase, while the writer writes
        for phase, commits in enumerate((1000, 1000, 200)):
            for _ in range(commits):
                await store.insert([make_job()])
            if phase < 2:
                await _until(lambda: store._checkpoints.runs >= phase + 1)
        # each start-over of the WAL adds one to the checkpoint sequence in its header
        with open(path + "-wal", "rb") as wal:
            assert int.from_bytes(wal.read(16)[12:16], "big") >= 2
        # it never held more than a phase (about 5,500 pages), 11,000 if never started over
        assert os.path.getsize(path + "-wal") < 8000 * PAGE
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (2200,)
