"""The outbox of notifications: pending webhooks and e-mails of ended jobs.

Rows are written by the ``jobs_end_outbox`` trigger (see ``schema``) in the statement that
ends a job; these methods read them and record each delivery's fate.
"""

from __future__ import annotations

from ...models import Notice


class OutboxQueries:
    """Outbox methods of ``SQLiteStore``, which supplies ``_enqueue`` (its group-commit writer)
    and ``_read``."""

    async def due_notices(self, now_ms: int, limit: int) -> list[Notice]:
        """Pending notices whose time has come, oldest first."""
        rows = await self._read(
            "SELECT seq, job_id, kind, target, attempts FROM outbox "
            "WHERE state = 'pending' AND due_at_ms <= ? ORDER BY due_at_ms, seq LIMIT ?",
            (now_ms, limit),
        )
        return [Notice(*row) for row in rows]

    async def next_notice_due_ms(self) -> int | None:
        """When the earliest pending notice is due, or None when none is pending."""
        rows = await self._read("SELECT min(due_at_ms) FROM outbox WHERE state = 'pending'", ())
        return rows[0][0]

    async def notice_delivered(self, seq: int) -> None:
        """A delivered notice leaves the outbox."""
        await self._enqueue("DELETE FROM outbox WHERE seq = ? AND state = 'pending'", (seq,))

    async def notice_retry(self, seq: int, *, due_at_ms: int, error: str, give_up: bool) -> None:
        """Count a failed delivery: try again at ``due_at_ms``, or keep it as 'failed'."""
        await self._enqueue(
            "UPDATE outbox SET attempts = attempts + 1, due_at_ms = ?, last_error = ?, "
            "state = ? WHERE seq = ? AND state = 'pending'",
            (due_at_ms, error[:1000], "failed" if give_up else "pending", seq),
        )

    async def failed_notices(self, job_id: str) -> list[tuple[str, int, str | None]]:
        """(kind, attempts, last error) of a job's notices that were given up."""
        return [
            tuple(row) for row in await self._read(
                "SELECT kind, attempts, last_error FROM outbox "
                "WHERE job_id = ? AND state = 'failed' ORDER BY seq", (job_id,))
        ]
