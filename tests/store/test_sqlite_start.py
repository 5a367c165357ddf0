"""What opening a SQLite file costs: one commit for a fresh schema, no idle thread.

The migrations run in one transaction (SQLite commits each DDL statement by itself, with
an fsync, outside one), so a fresh file costs one commit and a failed migration leaves the
file at its old version. The checkpoint thread starts with the first checkpoint.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from aioqueue.errors import Unavailable
from aioqueue.store.sqlite import SQLiteStore
from tests.helpers.database import sqlite_at_version


async def test_a_fresh_file_is_created_in_one_commit(tmp_path):
    store = SQLiteStore(str(tmp_path / "fresh.db"))
    await store.open()
    try:
        with sqlite3.connect(store.path) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        # one transaction writes each page to the WAL once; one commit per statement
        # writes the schema's pages again at every statement
        assert 0 < frames <= pages, (frames, pages)
    finally:
        await store.close()


async def test_a_migration_that_fails_leaves_the_file_at_its_old_version(tmp_path):
    path = str(tmp_path / "v1.db")
    sqlite_at_version(path, 1)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schedules (x)")  # the fourth migration creates it
    with pytest.raises(Unavailable, match="already exists"):
        await SQLiteStore(path).open()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "outbox" not in names and "jobs_idempotency" not in names  # 2nd and 3rd undone


async def test_an_idle_store_has_no_checkpoint_thread(tmp_path):
    store = SQLiteStore(str(tmp_path / "idle.db"))
    await store.open()
    try:
        assert "aioqueue-checkpoints" not in {t.name for t in threading.enumerate()}
    finally:
        await store.close()
