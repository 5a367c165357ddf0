"""The change log on PostgreSQL: transactions that commit in another order than they wrote
the log are read all the same, once each."""

from __future__ import annotations

import asyncpg

from aioqueue.store.postgres import PostgresStore
from tests.factories import make_job


async def test_a_transaction_that_commits_after_a_later_one_is_not_skipped(pg_url):
    store = PostgresStore(pg_url, pool_size=2)
    await store.open()
    early, late = make_job(), make_job()
    await store.insert([early, late])
    first, second = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        cursor = (await store.changes_since(None, limit=10)).cursor
        slow = first.transaction()
        await slow.start()
        # the slow transaction writes its log row first (its xid and row are the older)...
        await first.execute("UPDATE jobs SET state = 'paused' WHERE id = $1", early.id)
        # ...and a later one writes and commits before it
        await second.execute("UPDATE jobs SET state = 'paused' WHERE id = $1", late.id)
        page = await store.changes_since(cursor, limit=10)
        assert [j.id for j in page.jobs] == [late.id]
        await slow.commit()
        again = await store.changes_since(page.cursor, limit=10)
        assert [j.id for j in again.jobs] == [early.id]  # read once it committed
        assert (await store.changes_since(again.cursor, limit=10)).jobs == []  # and only once
        # a statement that changes nothing a reader sees (a lease renewal) logs nothing
        await second.execute("UPDATE jobs SET priority = priority + 1")
        assert (await store.changes_since(again.cursor, limit=10)).jobs == []
    finally:
        await first.close()
        await second.close()
        await store.close()


async def test_an_existing_database_is_migrated_and_its_log_starts_empty(pg_url):
    store = PostgresStore(pg_url, pool_size=2)
    await store.open()
    job = make_job()
    await store.insert([job])
    await store.close()
    conn = await asyncpg.connect(pg_url)
    try:  # back to the schema before the log, as an older aioqueue left it
        for statement in ("DROP TABLE changes, change_marks, changes_pruned",
                          "DROP TRIGGER jobs_changes_insert ON jobs",
                          "DROP TRIGGER jobs_changes_update ON jobs",
                          "DROP FUNCTION jobs_changes_insert(), jobs_changes_update()",
                          "UPDATE schema_version SET version = version - 1"):
            await conn.execute(statement)
    finally:
        await conn.close()
    store = PostgresStore(pg_url, pool_size=2)
    await store.open()
    try:
        cursor = (await store.changes_since(None, limit=10)).cursor
        assert await store.pause(job.id) is not None
        page = await store.changes_since(cursor, limit=10)
        assert [j.id for j in page.jobs] == [job.id]
    finally:
        await store.close()
