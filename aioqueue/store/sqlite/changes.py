"""The change log on SQLite: one light row per change of a job, for resumable event streams.

Triggers on ``jobs`` append ``(seq, job_id)`` in the statement that makes the change, so a
change and its row commit together, inside the group commit, with no statement of their
own. Only this process writes the file, one transaction at a time, so ``seq`` grows in
commit order and a cursor is simply the last ``seq`` read.

Pruning keeps the newest row, so ``seq`` (a rowid: the largest plus one) never goes back,
and records in ``changes_pruned`` the highest ``seq`` dropped: a cursor below it has lost
history. ``change_marks`` remembers where the log stood at each pruning, which turns
"older than the retention window" into a ``seq``.
"""

from __future__ import annotations

import asyncio
import re

from ..base import ChangePage
from ..common import COLUMNS, row_to_job

#: what changes a job for a reader of its events: its state, its progress, its attempts
_CHANGED = ("OLD.state IS NOT NEW.state OR OLD.progress IS NOT NEW.progress "
            "OR OLD.attempts IS NOT NEW.attempts")

#: the migration that adds the log (an existing database starts it empty)
CHANGE_LOG: list[str] = [
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL)",
    "CREATE TABLE change_marks (at_ms INTEGER PRIMARY KEY, position INTEGER NOT NULL)",
    "CREATE TABLE changes_pruned (through INTEGER NOT NULL)",
    "INSERT INTO changes_pruned VALUES (0)",
    "CREATE TRIGGER jobs_changes_insert AFTER INSERT ON jobs "
    "BEGIN INSERT INTO changes (job_id) VALUES (NEW.id); END",
    f"CREATE TRIGGER jobs_changes_update AFTER UPDATE OF state, progress, attempts ON jobs "
    f"WHEN {_CHANGED} BEGIN INSERT INTO changes (job_id) VALUES (NEW.id); END",
]

#: a cursor as this store writes it: the digits of a seq
_CURSOR = re.compile(r"[0-9]{1,18}", re.ASCII)

#: where the log ends: a cursor that has seen everything so far
_TOP_SQL = "SELECT coalesce(max(seq), 0) FROM changes"

#: one statement (one snapshot): the log's end, what was pruned, and each job changed
#: after the cursor (?1, up to ?3 of them; ?2: one job only) as it stands now
_SINCE_SQL = f"""
WITH top(m) AS ({_TOP_SQL}),
c(job_id, s) AS (
    SELECT job_id, max(seq) FROM changes
    WHERE seq > ?1 AND seq <= (SELECT m FROM top) AND (?2 IS NULL OR job_id = ?2)
    GROUP BY job_id ORDER BY 2 LIMIT ?3)
SELECT top.m, p.through, c.s, {', '.join('j.' + c.strip() for c in COLUMNS.split(','))}
FROM top CROSS JOIN changes_pruned p LEFT JOIN c ON 1 LEFT JOIN jobs j ON j.id = c.job_id
ORDER BY c.s
"""


class ChangeQueries:
    """``changes_since`` and ``prune_changes`` of ``SQLiteStore``, which supplies
    ``_enqueue`` (its group-commit writer) and ``_read``."""

    async def changes_since(self, cursor: str | None, *, limit: int,
                            job_id: str | None = None) -> ChangePage:
        """Reads the log after ``cursor`` on the reader connection, in one statement.

        Without a cursor only the log's end is read (a rowid seek): the feed's first read at
        start must not group the whole log, a million rows on a big database."""
        if cursor is None:
            rows = await self._read(_TOP_SQL, ())
            return ChangePage(str(rows[0][0]), [], True)
        after = int(cursor) if _CURSOR.fullmatch(cursor) else -1
        rows = await self._read(_SINCE_SQL, (max(after, 0), job_id, limit + 1))
        top, pruned = rows[0][0], rows[0][1]
        now = str(top)
        if after < pruned or after > top or len(rows) > limit or after < 0:
            return ChangePage(now, [], False)
        jobs = [row_to_job(row[3:]) for row in rows if row[3] is not None]
        return ChangePage(now, jobs, True)

    async def prune_changes(self, before_ms: int, now_ms: int) -> int:
        """Marks where the log stands at ``now_ms``, then drops the rows older than the
        newest mark before ``before_ms`` (never the newest row). One transaction."""
        mark = "(SELECT max(position) FROM change_marks WHERE at_ms < ?1)"
        # queued together, without an await between: one batch, one transaction
        writes = [
            self._enqueue("INSERT OR REPLACE INTO change_marks VALUES (?, "
                          "(SELECT coalesce(max(seq), 0) FROM changes))", (now_ms,)),
            self._enqueue(
                f"UPDATE changes_pruned SET through = max(through, min(coalesce({mark}, 0), "
                "(SELECT coalesce(max(seq), 1) - 1 FROM changes)))", (before_ms,)),
            self._enqueue(
                "DELETE FROM changes WHERE seq <= (SELECT through FROM changes_pruned)", ()),
            self._enqueue("DELETE FROM change_marks WHERE at_ms < (SELECT max(at_ms) "
                          "FROM change_marks WHERE at_ms < ?)", (before_ms,)),
        ]
        return (await asyncio.gather(*writes))[2]
