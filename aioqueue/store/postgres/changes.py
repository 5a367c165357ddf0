"""Reading and pruning the change log (``changelog``) for ``PostgresStore``."""

from __future__ import annotations

import asyncpg

from ..base import ChangePage
from ..common import row_to_job
from .changelog import CURSOR, PRUNE_SQL, SINCE_SQL
from .migrate import try_xact_lock


class ChangeQueries:
    """``changes_since`` and ``prune_changes`` of ``PostgresStore``, which supplies
    ``_fetch``, ``_value`` and ``_run``."""

    async def changes_since(self, cursor: str | None, *, limit: int,
                            job_id: str | None = None) -> ChangePage:
        """One statement on a pooled connection; a cursor PostgreSQL cannot read as a
        snapshot (or not ours) gives an incomplete page, never an error."""
        if cursor is None:
            return ChangePage(await self._value("SELECT pg_current_snapshot()::text"), [], True)
        if not CURSOR.fullmatch(cursor):
            return await self._lost()

        async def since(conn: asyncpg.Connection) -> list[asyncpg.Record] | None:
            try:
                return await conn.fetch(SINCE_SQL, cursor, limit + 1, job_id)
            except asyncpg.DataError:
                return None  # digits that make no snapshot (xmin above xmax, say)

        rows = await self._run(since)
        if rows is None:
            return await self._lost()
        now, lost = rows[0][0], rows[0][1]
        if lost or len(rows) > limit:
            return ChangePage(now, [], False)
        return ChangePage(now, [row_to_job(row[3:]) for row in rows if row[3] is not None],
                          True)

    async def _lost(self) -> ChangePage:
        page = await self.changes_since(None, limit=1)
        return ChangePage(page.cursor, [], False)

    async def prune_changes(self, before_ms: int, now_ms: int) -> int:
        """One statement under a transaction-level advisory lock: one server at a time."""

        async def prune(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                if not await try_xact_lock(conn, "changes"):
                    return 0
                return await conn.fetchval(PRUNE_SQL, before_ms, now_ms)

        return await self._run(prune)
