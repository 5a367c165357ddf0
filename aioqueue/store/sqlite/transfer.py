"""Rows in and out of a SQLite store as they are: ``import_rows`` and ``export_notices``.

``migrate-store`` copies a whole store with them. The import is one transaction of its own
on a connection of its own, apart from the group commit: all of a call is stored, or none.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

import aiosqlite

from ...errors import DuplicateJob, Unavailable
from ...models import Job
from ..base import OutboxRow
from .schema import COLUMNS, _job_to_row

log = logging.getLogger(__name__)

_NOTICE_COLUMNS = "job_id, kind, target, state, attempts, due_at_ms, last_error"
# a plain INSERT: a taken id, position or key must fail the whole call, not skip a row
_IMPORT_JOB = f"INSERT INTO jobs (seq, {COLUMNS}) VALUES ({', '.join('?' * (COLUMNS.count(',') + 2))})"
_IMPORT_NOTICE = f"INSERT INTO outbox ({_NOTICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


class TransferQueries:
    """Bulk methods of ``SQLiteStore``, which supplies ``path``, ``synchronous`` and ``_read``."""

    async def export_notices(self, *, after: int, limit: int) -> list[tuple[int, OutboxRow]]:
        """Outbox rows after position ``after``, oldest first (see ``JobStore``)."""
        rows = await self._read(
            f"SELECT seq, {_NOTICE_COLUMNS} FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit))
        return [(row[0], OutboxRow(*row[1:])) for row in rows]

    async def import_rows(self, jobs: Sequence[tuple[int, Job]],
                          notices: Sequence[OutboxRow]) -> None:
        """Store jobs at their positions and outbox rows as given, in one transaction.

        Jobs left running are settled by the next server's start-up recovery, which on
        SQLite re-queues or interrupts every running job.
        """
        try:
            async with aiosqlite.connect(self.path, isolation_level=None) as conn:
                await conn.execute(f"PRAGMA synchronous={self.synchronous}")
                await conn.execute("PRAGMA busy_timeout=5000")
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    await conn.executemany(
                        _IMPORT_JOB, [(seq, *_job_to_row(job)) for seq, job in jobs])
                    await conn.executemany(_IMPORT_NOTICE, [
                        (n.job_id, n.kind, n.target, n.state, n.attempts, n.due_at_ms,
                         n.last_error) for n in notices])
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise DuplicateJob(f"the store already holds one of these jobs: {exc}") from None
        except sqlite3.Error as exc:
            log.error("import failed: %r", exc)
            raise Unavailable("storage unavailable: the import failed") from None
