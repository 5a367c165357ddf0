"""The test's database seen from outside the server, for SQLite files and PostgreSQL URLs
alike: one statement on a connection of its own."""

from __future__ import annotations

import sqlite3

from aioqueue.config import StorageSettings
from aioqueue.models import Job
from aioqueue.store import is_postgres_url, store_for


def execute(location: str, sql: str) -> None:
    """Run ``sql`` on the database at ``location`` and commit it."""
    if is_postgres_url(location):
        from tests import postgres

        postgres.execute(location, sql)
        return
    with sqlite3.connect(location) as conn:
        conn.execute(sql)


def missing_table_error(location: str) -> str:
    """What the database says, in the server's log, of a table that is not there."""
    return "does not exist" if is_postgres_url(location) else "no such table"


async def stored_job(storage: StorageSettings, job_id: str) -> Job | None:
    """The job as the database holds it, read through a store of its own (after the server
    that wrote it stopped)."""
    store = store_for(storage)
    await store.open()
    try:
        return await store.get(job_id)
    finally:
        await store.close()


def sqlite_at_version(path: str, version: int, *, job_id: str | None = None) -> None:
    """Create a SQLite file at ``path`` holding the first ``version`` migrations and
    ``PRAGMA user_version=version``, and, given ``job_id``, one queued ``echo`` job of that
    schema's columns."""
    from aioqueue.store.sqlite import MIGRATIONS

    with sqlite3.connect(path) as conn:
        for migration in MIGRATIONS[:version]:
            for statement in migration:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
        if job_id is not None:
            conn.execute(
                "INSERT INTO jobs (id, process, state, input, max_attempts, created_at_ms, "
                "scheduled_at_ms) VALUES (?, 'echo', 'queued', x'7b7d', 1, 5, 5)", (job_id,))
