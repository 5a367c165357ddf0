"""The change log on SQLite: an existing database is migrated, its log starts empty."""

from __future__ import annotations

from aioqueue.models import JobState
from aioqueue.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStore
from aioqueue.store.sqlite.changes import CHANGE_LOG
from tests.factories import make_job
from tests.helpers.database import sqlite_at_version


async def test_a_database_of_the_schema_before_the_log_is_migrated(tmp_path):
    path = str(tmp_path / "before.db")
    before = MIGRATIONS.index(CHANGE_LOG)
    sqlite_at_version(path, before, job_id="a" * 32)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (await store._read("PRAGMA user_version", ()))[0][0] == SCHEMA_VERSION
        start = await store.changes_since(None, limit=10)
        assert (start.cursor, start.jobs) == ("0", [])
        assert (await store.pause("a" * 32)).state is JobState.PAUSED
        page = await store.changes_since(start.cursor, limit=10)
        assert [j.id for j in page.jobs] == ["a" * 32] and page.cursor == "1"
    finally:
        await store.close()


async def test_cursors_survive_a_restart(tmp_path):
    path = str(tmp_path / "again.db")
    first = SQLiteStore(path)
    await first.open()
    job = make_job()
    await first.insert([job])
    cursor = (await first.changes_since(None, limit=10)).cursor
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    try:
        await second.pause(job.id)
        assert [j.id for j in (await second.changes_since(cursor, limit=10)).jobs] == [job.id]
    finally:
        await second.close()
